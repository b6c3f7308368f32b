import "./flowlist.css";
// The /flows/ page is server-rendered; this only adds confirmations and the import picker.
document.addEventListener("submit", (e) => {
  const form = e.target as HTMLFormElement;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) e.preventDefault();
});

document.querySelectorAll<HTMLInputElement>("input[data-autosubmit]").forEach((input) => {
  input.addEventListener("change", () => input.files?.length && input.form?.requestSubmit());
});
