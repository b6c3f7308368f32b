from __future__ import annotations

from django.contrib import admin

from studio.tenants.models import ApiKey, Membership, Secret, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "prefix", "role", "last_used_at", "revoked_at")
    list_filter = ("role",)
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "updated_at")
    # The ciphertext is not shown: secrets are write-only, even here.
    exclude = ("ciphertext",)
    readonly_fields = ("tenant", "name", "created_by", "created_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False
