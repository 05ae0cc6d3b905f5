import pytest


@pytest.fixture(params=["disk", "memory"])
def storage(request):
    return request.param
