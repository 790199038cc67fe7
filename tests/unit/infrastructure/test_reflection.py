"""The reflection file set and the v1 descriptor built from v1alpha (no I/O)."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, text_format
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

from service.infrastructure.grpc.health import HEALTH_SERVICE_NAME
from service.infrastructure.grpc.reflection import V1_FILE, FileSet, reflection_servicer
from service.infrastructure.grpc.todo_entry import SERVICE_NAME


def as_proto(file: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto.FromString(file.serialized_pb)


def test_v1_is_v1alpha_with_the_package_renamed() -> None:
    v1 = as_proto(V1_FILE)
    assert (v1.name, v1.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    assert "v1alpha" not in text_format.MessageToString(v1)
    renamed_back = text_format.MessageToString(v1).replace(".grpc.reflection.v1.", ".grpc.reflection.v1alpha.")
    back = text_format.Parse(renamed_back, descriptor_pb2.FileDescriptorProto())
    back.name, back.package = v1alpha_pb2.DESCRIPTOR.name, "grpc.reflection.v1alpha"
    assert back == as_proto(v1alpha_pb2.DESCRIPTOR)
    assert "ServerReflectionInfo" in V1_FILE.services_by_name["ServerReflection"].methods_by_name


def test_the_service_set_holds_the_served_files_and_their_imports_only() -> None:
    servicer = reflection_servicer((SERVICE_NAME, HEALTH_SERVICE_NAME))
    assert servicer.service_names == (
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "todo.v1.TodoService",
    )
    files = servicer.files
    assert "todo/v1/todo_service.proto" in files.serialized
    assert "grpc_health/v1/health.proto" in files.serialized
    assert not [name for name in files.serialized if name.startswith("opentelemetry")]
    for name, closure in files.closures.items():
        protos = [descriptor_pb2.FileDescriptorProto.FromString(file) for file in closure]
        assert protos[0].name == name
        sent = {proto.name for proto in protos}
        assert len(sent) == len(protos)
        assert all(set(proto.dependency) <= sent for proto in protos), name
    assert files.symbols["todo.v1.TodoService.GetTodo"] == "todo/v1/todo_service.proto"
    assert files.symbols["grpc.health.v1.HealthCheckResponse.SERVING"] == "grpc_health/v1/health.proto"
    assert files.symbols["grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING"] == "grpc_health/v1/health.proto"


def private_file(source: descriptor_pb2.FileDescriptorProto) -> FileDescriptor:
    pool = descriptor_pool.DescriptorPool()
    file: FileDescriptor = pool.AddSerializedFile(source.SerializeToString())  # type: ignore[no-untyped-call]
    return file


def test_two_different_files_of_one_name_are_refused() -> None:
    other = descriptor_pb2.FileDescriptorProto(name=V1_FILE.name, package="elsewhere")
    with pytest.raises(ValueError, match="two different files are named"):
        FileSet([V1_FILE, private_file(other)])


def test_a_symbol_declared_twice_is_refused() -> None:
    twin = as_proto(V1_FILE)
    twin.name = "twin/reflection.proto"
    with pytest.raises(ValueError, match=r"grpc\.reflection\.v1\.ServerReflectionRequest is declared in both"):
        FileSet([V1_FILE, private_file(twin)])


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(ValueError, match=r"declares the service todo\.v1\.Nope"):
        reflection_servicer(("todo.v1.Nope",))
