"""gRPC answers become the same dicts, with ints, as Triton's HTTP answers."""

from __future__ import annotations

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2

from client._proto import message_to_dict


def test_model_config_dims_are_ints_and_parameters_kept() -> None:
    config = text_format.Parse(
        """
        name: "m" max_batch_size: 8
        input { name: "image" data_type: TYPE_STRING dims: [1] }
        output { name: "probabilities" data_type: TYPE_FP32 dims: [-1] label_filename: "labels.txt" }
        parameters { key: "weights" value { string_value: "demo" } }
        dynamic_batching { max_queue_delay_microseconds: 2000 }
        """,
        mc.ModelConfig(),
    )
    data = message_to_dict(config)
    assert data["input"][0]["dims"] == [1]
    assert data["output"][0]["dims"] == [-1]
    assert data["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert data["parameters"] == {"weights": {"string_value": "demo"}}
    assert data["output"][0]["label_filename"] == "labels.txt"
    # Defaults are present, as in Triton's HTTP answer.
    assert data["platform"] == "" and data["input"][0]["is_shape_tensor"] is False


def test_statistics_counts_are_ints_versions_stay_strings() -> None:
    stats = service_pb2.ModelStatisticsResponse()
    model = stats.model_stats.add(name="m", version="2", inference_count=12, execution_count=3)
    model.inference_stats.success.count = 5
    model.inference_stats.success.ns = 123456789012
    model.inference_stats.fail.SetInParent()  # Triton sets every duration, even when zero
    data = message_to_dict(stats)
    row = data["model_stats"][0]
    assert row["version"] == "2"
    assert (row["inference_count"], row["execution_count"]) == (12, 3)
    assert row["inference_stats"]["success"] == {"count": 5, "ns": 123456789012}
    assert row["inference_stats"]["fail"] == {"count": 0, "ns": 0}


def test_repository_index_rows() -> None:
    index = service_pb2.RepositoryIndexResponse()
    index.models.add(name="m", version="1", state="READY")
    index.models.add(name="spare")
    rows = message_to_dict(index)["models"]
    assert rows[0] == {"name": "m", "version": "1", "state": "READY", "reason": ""}
    assert rows[1]["name"] == "spare" and rows[1]["state"] == ""
