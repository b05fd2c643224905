"""The Serve application builder: one application per Kino service, from typed arguments.

`serve deploy deploy/serve-cpu.yaml` and the RayService in k8s/ list one application per service,
each `import_path: services.cluster.app:build_app` with `args: {service: <Name>}`; `kino up` builds the
same applications in Python (services/cluster/up.py). The application and its single deployment are
named after the proto service, which is how Serve's gRPC proxy finds them from the `application`
metadata (services/cluster/routing.py).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from services.cluster import catalog
from services.common.settings import Settings, load_settings

ServiceName = Literal["TextEncoder", "VideoDenoiser", "AudioGenerator", "FeedRanker", "Generation"]


class KinoAppArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: ServiceName
    # Kino settings for the replicas: a YAML file readable where the builder runs (KINO_CONFIG if
    # unset), then nested overrides by section, e.g. {"text_encoder": {"max_batch": 16}}.
    config_file: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    # Deployment options over the code defaults (tests, `kino up`); Serve config files override
    # deployments under `deployments:` instead.
    deployment_options: dict[str, Any] = Field(default_factory=dict)

    def resolve_settings(self) -> Settings:
        settings = load_settings(self.config_file, **self.settings)
        # Replicas do not share the builder's working directory.
        return settings.model_copy(update={"data_dir": settings.data_dir.resolve()})


def build_app(args: KinoAppArgs | dict) -> Application:
    """One service's Serve application; refuses a service whose code is not in this build."""
    from services.cluster.deployments import DEPLOYMENTS

    args = args if isinstance(args, KinoAppArgs) else KinoAppArgs.model_validate(args)
    spec = catalog.BY_NAME[args.service]
    if not spec.is_built():
        raise ValueError(
            f"the {spec.name} service is not built yet ({spec.servicer_module} is missing); "
            f"built services: {', '.join(s.name for s in catalog.built_services())}"
        )
    deployment = DEPLOYMENTS[spec.name]
    if args.deployment_options:
        deployment = deployment.options(**args.deployment_options)
    return deployment.bind(args.resolve_settings())


def grpc_servicer_functions(services: list[catalog.ServiceSpec] | None = None) -> list[str]:
    """The generated add_*Servicer_to_server functions Serve's gRPC proxy registers (gRPCOptions)."""
    return [spec.add_servicer_function for spec in (services or catalog.built_services())]
