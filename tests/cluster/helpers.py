from __future__ import annotations

import itertools

from ray import serve

from services.cluster.app import KinoAppArgs, build_app
from services.common.settings import Settings

_unique = itertools.count()


def deploy_probe(settings: Settings, service: str, app_name: str, **deployment_options) -> None:
    """Deploys a service's real deployment as an extra application, with its own options."""
    args = KinoAppArgs(
        service=service,
        settings=settings.model_dump(mode="json"),
        deployment_options={"autoscaling_config": None, "num_replicas": 1, **deployment_options},
    )
    serve.run(build_app(args), name=app_name, route_prefix=f"/{app_name}")


def unique_texts(count: int, words: int = 6) -> list[str]:
    """Texts no cache has seen, so every one costs a forward pass."""
    batch = next(_unique)
    return [f"probe {batch} {i} " + " ".join(["a red ball bounces"] * words) for i in range(count)]
