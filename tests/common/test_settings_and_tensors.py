"""Settings load from defaults, YAML and environment; tensors round-trip and reject malformed input."""

import numpy as np
import pytest
from pydantic import ValidationError

from kino.v1 import common_pb2
from services.common.errors import KinoError
from services.common.settings import load_settings
from services.common.tensors import from_proto, to_proto


def test_environment_overrides_yaml_which_overrides_defaults(tmp_path):
    config = tmp_path / "kino.yaml"
    config.write_text("server:\n  port: 6000\n  grace_seconds: 3\ngateway:\n  max_running_jobs: 4\n")
    settings = load_settings(config, env={"KINO_SERVER__PORT": "7000"})
    assert settings.server.port == 7000
    assert settings.server.grace_seconds == 3
    assert settings.gateway.max_running_jobs == 4
    assert settings.text_encoder.max_batch == 32


def test_a_misspelled_setting_fails_loudly():
    with pytest.raises(ValidationError, match="prot"):
        load_settings(env={"KINO_SERVER__PROT": "1"})


def test_sqlite_under_data_dir_is_the_default_job_store(tmp_path):
    settings = load_settings(env={"KINO_DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/jobs.db"


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.uint8, np.int16, np.int32, np.int64])
def test_tensor_round_trip(dtype):
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    back = from_proto(to_proto(array), field="x")
    assert back.dtype == array.dtype and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    "tensor, needle",
    [
        (common_pb2.Tensor(dtype=common_pb2.DTYPE_FLOAT32, shape=[2, 2], data=b"\0" * 15), "needs 16 bytes"),
        (common_pb2.Tensor(dtype=common_pb2.DTYPE_UNSPECIFIED, shape=[1], data=b"\0"), "unsupported dtype"),
        (common_pb2.Tensor(dtype=99, shape=[1], data=b"\0"), "unsupported dtype"),
        (common_pb2.Tensor(dtype=common_pb2.DTYPE_UINT8, shape=[-1], data=b""), "negative dimension"),
        (to_proto(np.array([1.0, np.nan], np.float32)), "NaN or Inf"),
        (to_proto(np.array([np.inf], np.float32)), "NaN or Inf"),
    ],
)
def test_malformed_tensor_is_invalid_argument(tensor, needle):
    with pytest.raises(KinoError) as raised:
        from_proto(tensor, field="frames")
    assert raised.value.reason == "INVALID_TENSOR"
    assert needle in raised.value.message and raised.value.metadata["field"] == "frames"


def test_tensor_expectations_on_dtype_and_rank():
    tensor = to_proto(np.zeros((4, 384), np.float32))
    with pytest.raises(KinoError, match="dtype must be uint8"):
        from_proto(tensor, field="t", dtype=np.uint8)
    with pytest.raises(KinoError, match="expected 3 dimensions"):
        from_proto(tensor, field="t", ndim=3)
