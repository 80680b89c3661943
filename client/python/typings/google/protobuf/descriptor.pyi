from typing import Mapping, Optional

class Descriptor:
    name: str
    full_name: str

class EnumDescriptor:
    name: str

class MethodDescriptor:
    name: str
    input_type: Descriptor
    output_type: Descriptor
    client_streaming: bool
    server_streaming: bool

class ServiceDescriptor:
    name: str
    methods_by_name: Mapping[str, MethodDescriptor]

class FileDescriptor:
    name: str
    services_by_name: Mapping[str, ServiceDescriptor]
    message_types_by_name: Mapping[str, Descriptor]
