"""Kino's five services as Serve sees them: proto service, Serve application, and whether it is built.

A service is deployed when its servicer module exists (`services/<pkg>/servicer.py` with the usual
`registration(settings, ...)`), so the graph grows as services land without a change here. The Serve
application and its ingress deployment carry the proto service's name, which is what the client-side
routing (services/cluster/routing.py) derives from each method name.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import cached_property

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass


@dataclass(frozen=True)
class ServiceSpec:
    # The proto service name; also the Serve application and deployment name.
    name: str
    # The package whose `servicer` module has `registration(settings, ...)`.
    package: str
    # The generated module prefix under kino.v1 (kino/v1/<proto>_pb2.py).
    proto: str
    # The settings section that holds the service's tunables (Serve's user_config overrides it).
    settings_section: str

    @property
    def servicer_module(self) -> str:
        return f"{self.package}.servicer"

    @property
    def add_servicer_function(self) -> str:
        """Import path of the generated add_<Service>Servicer_to_server, as gRPCOptions wants it."""
        return f"kino.v1.{self.proto}_pb2_grpc.add_{self.name}Servicer_to_server"

    def is_built(self) -> bool:
        """The servicer module exists (it may still fail to import: see `import_error`)."""
        try:
            return importlib.util.find_spec(self.servicer_module) is not None
        except ModuleNotFoundError:
            return False

    def import_error(self) -> Exception | None:
        """Why the built servicer module cannot be imported here, or None when it can."""
        try:
            importlib.import_module(self.servicer_module)
        except Exception as error:  # a half-finished service must not take the others down
            return error
        return None

    @cached_property
    def descriptor(self) -> ServiceDescriptor:
        module = importlib.import_module(f"kino.v1.{self.proto}_pb2")
        return module.DESCRIPTOR.services_by_name[self.name]

    def method(self, name: str) -> MethodDescriptor:
        return self.descriptor.methods_by_name[name]

    def full_method(self, name: str) -> str:
        """`/kino.v1.TextEncoder/Encode`: the label RPC metrics use in every mode."""
        return f"/{self.descriptor.full_name}/{name}"

    def response_class(self, name: str):
        return GetMessageClass(self.method(name).output_type)


TEXT_ENCODER = ServiceSpec("TextEncoder", "services.text_encoder", "text_encoder", "text_encoder")
VIDEO_DENOISER = ServiceSpec("VideoDenoiser", "services.denoiser", "denoiser", "denoiser")
AUDIO_GENERATOR = ServiceSpec("AudioGenerator", "services.audio", "audio", "audio")
FEED_RANKER = ServiceSpec("FeedRanker", "services.ranker", "ranker", "ranker")
GENERATION = ServiceSpec("Generation", "services.gateway", "generation", "gateway")

# Dependency order: the gateway last, so the services it calls are up before it warms up.
ALL_SERVICES = (TEXT_ENCODER, VIDEO_DENOISER, AUDIO_GENERATOR, FEED_RANKER, GENERATION)
BY_NAME = {spec.name: spec for spec in ALL_SERVICES}


def built_services() -> list[ServiceSpec]:
    return [spec for spec in ALL_SERVICES if spec.is_built()]
