"""Flow, FlowVersion, Run and StepRun arrive with the engine (issue "Flow engine on Celery")."""
