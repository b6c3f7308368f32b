from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from rest_framework import authentication, exceptions

from studio.tenants import key_cache
from studio.tenants.selectors import Actor
from studio.tenants.services import api_key_touch


class ApiKeyUser(AnonymousUser):
    """The principal of a request authenticated by a tenant API key (not a person)."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    def __str__(self) -> str:
        return self.actor.label


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <tenant API key>``; the key's tenant and role are the actor's."""

    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header must be 'Bearer <key>'")
        raw_key = header[1].decode(errors="replace")
        api_key = key_cache.find_active(raw_key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("unknown or revoked API key")
        if api_key_touch(api_key=api_key):
            key_cache.recorded_use(api_key)
        actor = Actor(tenant=api_key.tenant, role=api_key.role, api_key=api_key)
        request._request.actor = actor
        return ApiKeyUser(actor), api_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
