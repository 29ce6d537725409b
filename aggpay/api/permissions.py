from rest_framework.permissions import BasePermission


class IsMerchantApp(BasePermission):  # replaced by the API front-door work
    def has_permission(self, request, view):
        return False
