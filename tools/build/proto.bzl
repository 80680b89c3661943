"""ckpt_cc_proto: one .proto -> a cc_library of its messages (and gRPC stubs).

Uses Debian's /usr/bin/protoc and /usr/bin/grpc_cpp_plugin, so nothing is downloaded.
Generated files land in bazel-bin and are never committed.

Args:
  name: the cc_library's name.
  src: the .proto file (a label).
  import_path: the .proto's path relative to its import root, e.g. "ckpt/v1/x.proto".
      Call the macro from the import root's own package, so outputs sit where protoc
      writes them;
      it is also how other protos import it and how C++ includes its headers
      ("ckpt/v1/x.pb.h").
  import_root: the directory that import paths are relative to, as protoc sees it
      from the execution root (e.g. "proto", or "external/grpc_proto_files").
  deps: ckpt_cc_proto targets whose .proto files this one imports.
  proto_deps: those .proto files (labels), made visible to protoc.
  grpc: also generate gRPC service stubs.
  headers_only: compile no .cc; for protos whose code a system library already
      carries (linking both would register every descriptor twice). Put that
      library in deps.
"""

def ckpt_cc_proto(name, src, import_path, import_root, deps = [], proto_deps = [], grpc = False, headers_only = False, visibility = None):
    stem = import_path[:-len(".proto")]
    outs = [stem + ".pb.h", stem + ".pb.cc"]
    if grpc:
        outs += [stem + ".grpc.pb.h", stem + ".grpc.pb.cc"]

    # Outputs are declared under this package; protoc writes them relative to the
    # import root, so --cpp_out points at the package's own output directory.
    out_dir = "$(GENDIR)/" + native.package_name()
    cmd = ("/usr/bin/protoc -I{root} -I. -I/usr/include --cpp_out={out} ").format(
        root = import_root,
        out = out_dir,
    )
    if grpc:
        cmd += "--grpc_out={out} --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin ".format(out = out_dir)
    cmd += "{root}/{path}".format(root = import_root, path = import_path)

    native.genrule(
        name = name + "_gen",
        srcs = [src] + proto_deps,
        outs = outs,
        cmd = cmd,
        message = "protoc " + import_path,
    )
    native.cc_library(
        name = name,
        srcs = [] if headers_only else [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        # Headers are included by import path: "ckpt/v1/checkpoint.pb.h".
        includes = ["."],
        deps = deps + ["@system//:grpc" if grpc else "@system//:protobuf"],
        copts = ["-Wno-unused-parameter"],
        visibility = visibility,
    )
