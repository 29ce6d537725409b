from rest_framework.views import exception_handler as drf_handler


def exception_handler(exc, context):  # replaced by the API front-door work
    return drf_handler(exc, context)
