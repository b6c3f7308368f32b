"""Tenant API: who am I, secrets (write-only) and API keys (shown once)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studio.tenants import selectors, services
from studio.tenants.permissions import request_actor
from studio.tenants.roles import Role


class MeApi(APIView):
    required_permission = "tenant.view"

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "tenant": inline_serializer(
                    "MeTenant",
                    {
                        "id": serializers.IntegerField(),
                        "slug": serializers.CharField(),
                        "name": serializers.CharField(),
                    },
                ),
                "role": serializers.CharField(),
                "principal": serializers.CharField(),
            },
        )
    )
    def get(self, request):
        actor = request_actor(request)
        return Response(
            {
                "tenant": {"id": actor.tenant.id, "slug": actor.tenant.slug, "name": actor.tenant.name},
                "role": actor.role,
                "principal": actor.label,
            }
        )


class SecretOutput(serializers.Serializer):
    # Deliberately no value field: secrets are write-only through every interface.
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class SecretListApi(APIView):
    required_permission = "secrets.manage"

    class SecretCreate(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        value = serializers.CharField(trim_whitespace=False)
        description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    @extend_schema(responses=SecretOutput(many=True))
    def get(self, request):
        secrets = selectors.secret_list(tenant=request_actor(request).tenant)
        return Response({"results": SecretOutput(secrets, many=True).data})

    @extend_schema(request=SecretCreate, responses={201: SecretOutput})
    def post(self, request):
        data = self.SecretCreate(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        secret = services.secret_set(
            tenant=actor.tenant, user=actor.user, actor=actor.label, **data.validated_data
        )
        return Response(SecretOutput(secret).data, status=status.HTTP_201_CREATED)


class SecretDetailApi(APIView):
    required_permission = "secrets.manage"

    class SecretUpdate(serializers.Serializer):
        value = serializers.CharField(trim_whitespace=False)
        description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    @extend_schema(request=SecretUpdate, responses=SecretOutput)
    def put(self, request, pk: int):
        actor = request_actor(request)
        secret = selectors.secret_get(tenant=actor.tenant, pk=pk)
        data = self.SecretUpdate(data=request.data)
        data.is_valid(raise_exception=True)
        secret = services.secret_set(
            tenant=actor.tenant, name=secret.name, user=actor.user, actor=actor.label, **data.validated_data
        )
        return Response(SecretOutput(secret).data)

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        actor = request_actor(request)
        secret = selectors.secret_get(tenant=actor.tenant, pk=pk)
        services.secret_delete(secret=secret, actor=actor.label)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    role = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyListApi(APIView):
    required_permission = "api_keys.manage"

    class ApiKeyCreate(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        role = serializers.ChoiceField(choices=Role.values)

    @extend_schema(responses=ApiKeyOutput(many=True))
    def get(self, request):
        keys = selectors.api_key_list(tenant=request_actor(request).tenant)
        return Response({"results": ApiKeyOutput(keys, many=True).data})

    @extend_schema(request=ApiKeyCreate, responses={201: ApiKeyOutput})
    def post(self, request):
        data = self.ApiKeyCreate(data=request.data)
        data.is_valid(raise_exception=True)
        actor = request_actor(request)
        if data.validated_data["role"] == Role.OWNER and not actor.can("owners.manage"):
            return Response(
                {
                    "error": {
                        "code": "forbidden",
                        "message": "only an owner may create an owner key",
                        "details": [],
                    }
                },
                status=status.HTTP_403_FORBIDDEN,
            )
        issued = services.api_key_create(
            tenant=actor.tenant, user=actor.user, actor=actor.label, **data.validated_data
        )
        # The only time the key is ever returned.
        return Response(
            {**ApiKeyOutput(issued.api_key).data, "key": issued.raw_key}, status=status.HTTP_201_CREATED
        )


class ApiKeyDetailApi(APIView):
    required_permission = "api_keys.manage"

    @extend_schema(responses={204: None})
    def delete(self, request, pk: int):
        actor = request_actor(request)
        api_key = selectors.api_key_get(tenant=actor.tenant, pk=pk)
        services.api_key_revoke(api_key=api_key, actor=actor.label)
        return Response(status=status.HTTP_204_NO_CONTENT)
