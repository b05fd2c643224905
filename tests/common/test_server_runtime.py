"""The shared server runtime: errors become rich statuses, metrics are recorded, calls drain on stop."""

import asyncio
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from kino.v1 import generation_pb2, generation_pb2_grpc
from services.common.errors import error_info, not_found, resource_exhausted
from services.common.server import KinoServer, ServiceRegistration
from services.common.settings import load_settings


class ProbeServicer(generation_pb2_grpc.GenerationServicer):
    """A servicer whose behaviour is chosen by the job name, to exercise the runtime."""

    def __init__(self) -> None:
        self.slow_started = asyncio.Event()

    async def Get(self, request, context):
        if request.name == "defect":
            raise ValueError("a bug in the servicer")
        if request.name == "busy":
            raise resource_exhausted("QUEUE_FULL", "queue is full", retry_after_seconds=2.5, depth=7)
        if request.name == "slow":
            self.slow_started.set()
            await asyncio.sleep(1.0)
            return generation_pb2.Job(name="slow")
        if request.name.startswith("echo"):
            return generation_pb2.Job(name=request.name)
        raise not_found("JOB_NOT_FOUND", f"job {request.name} not found", name=request.name)

    async def Watch(self, request, context):
        for i in range(3):
            yield generation_pb2.Job(name=f"jobs/{i}")
        raise not_found("JOB_NOT_FOUND", "job vanished", name=request.name)


@pytest.fixture
async def probe_server():
    settings = load_settings(env={}, server={"port": 0, "metrics_port": 0, "max_message_mb": 1})
    servicer = ProbeServicer()
    registration = ServiceRegistration(
        generation_pb2.DESCRIPTOR.services_by_name["Generation"],
        generation_pb2_grpc.add_GenerationServicer_to_server,
        servicer,
    )
    server = KinoServer(settings.server, [registration])
    await server.start()
    channel = grpc.aio.insecure_channel(server.address)
    yield server, servicer, generation_pb2_grpc.GenerationStub(channel), channel
    await channel.close()
    await server.stop(0)


async def test_kino_error_becomes_status_with_error_info(probe_server):
    _, _, stub, _ = probe_server
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Get(generation_pb2.GetRequest(name="jobs/missing"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(raised.value) == ("JOB_NOT_FOUND", {"name": "jobs/missing"})


async def test_back_pressure_carries_retry_info(probe_server):
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    _, _, stub, _ = probe_server
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Get(generation_pb2.GetRequest(name="busy"))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(raised.value)
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    assert retry.retry_delay.ToMilliseconds() == 2500


async def test_unexpected_exception_is_internal_with_request_id(probe_server):
    _, _, stub, _ = probe_server
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Get(generation_pb2.GetRequest(name="defect"), metadata=(("x-request-id", "req-42"),))
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert error_info(raised.value) == ("INTERNAL_ERROR", {"request_id": "req-42"})
    assert "req-42" in raised.value.details()


async def test_request_id_is_echoed_or_assigned(probe_server):
    _, _, stub, _ = probe_server
    call = stub.Get(generation_pb2.GetRequest(name="echo"), metadata=(("x-request-id", "mine"),))
    await call
    assert dict(await call.initial_metadata())["x-request-id"] == "mine"
    call = stub.Get(generation_pb2.GetRequest(name="echo"))
    await call
    assert len(dict(await call.initial_metadata())["x-request-id"]) == 16


async def test_oversized_request_is_invalid_argument(probe_server):
    _, _, stub, _ = probe_server
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Get(generation_pb2.GetRequest(name="echo" + "x" * (1 << 20)))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, metadata = error_info(raised.value)
    assert reason == "MESSAGE_TOO_LARGE" and int(metadata["max"]) == 1 << 20


@pytest.mark.parametrize(
    "data",
    [b"\x0a\x02\xff\xfe", b"\x0a\x05ab", b"\xff\xff\xff"],
    ids=["a name that is not UTF-8", "a truncated message", "not a message at all"],
)
@pytest.mark.parametrize("method", ["Get", "Watch"])
async def test_bytes_that_are_not_the_methods_message_are_invalid_argument_with_a_reason(
    probe_server, data, method
):
    _, _, stub, channel = probe_server
    path = f"/kino.v1.Generation/{method}"
    raw = (channel.unary_unary if method == "Get" else channel.unary_stream)(path)  # bytes in, bytes out
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        call = raw(data)
        if method == "Watch":
            async for _ in call:
                pass
        else:
            await call
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    reason, metadata = error_info(raised.value)
    assert reason == "MALFORMED_REQUEST" and metadata["detail"]
    assert (await stub.Get(generation_pb2.GetRequest(name="echo"))).name == "echo"  # still answering


async def test_streaming_error_after_messages_keeps_the_messages(probe_server):
    _, _, stub, _ = probe_server
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for job in stub.Watch(generation_pb2.WatchRequest(name="jobs/x")):
            received.append(job.name)
    assert received == ["jobs/0", "jobs/1", "jobs/2"]
    assert error_info(raised.value)[0] == "JOB_NOT_FOUND"


async def test_metrics_count_requests_by_method_and_code(probe_server):
    server, _, stub, _ = probe_server
    await stub.Get(generation_pb2.GetRequest(name="echo-metrics"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Get(generation_pb2.GetRequest(name="jobs/none"))
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read().decode()
    assert 'kino_rpc_requests_total{code="OK",method="/kino.v1.Generation/Get"}' in text
    assert 'kino_rpc_requests_total{code="NOT_FOUND",method="/kino.v1.Generation/Get"}' in text
    assert "kino_rpc_latency_seconds_bucket" in text
    assert 'kino_rpc_in_flight{method="/kino.v1.Generation/Get"} 0.0' in text


async def test_health_and_reflection_list_the_service(probe_server):
    _, _, _, channel = probe_server
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="kino.v1.Generation"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    async for response in responses:
        names = {s.name for s in response.list_services_response.service}
        assert {"kino.v1.Generation", "grpc.health.v1.Health"} <= names
        break


async def test_stop_drains_in_flight_calls_and_refuses_new_ones(probe_server):
    server, servicer, stub, channel = probe_server
    in_flight = asyncio.ensure_future(stub.Get(generation_pb2.GetRequest(name="slow")))
    await servicer.slow_started.wait()
    stopping = asyncio.ensure_future(server.stop(grace=5))
    await asyncio.sleep(0.1)
    health = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Get(generation_pb2.GetRequest(name="echo-late"), timeout=2)
    assert (await in_flight).name == "slow"
    await stopping
    with pytest.raises(grpc.aio.AioRpcError):
        await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
