"""Staff roles (design §8). Filled in by the foundation: groups, permissions and the template context."""


def roles_context(request):
    return {}
