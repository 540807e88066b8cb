//! Compiles `proto/hookline/v1/*.proto` with prost, using the protoc shipped by
//! `protoc-bin-vendored` so no system protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("hookline/v1/hookline.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // The payload is `bytes::Bytes`, so fanning one event out to many deliveries shares
    // the body instead of copying it; prost never inspects it.
    config.bytes([".hookline.v1.Event.payload"]);
    // An attempt's request headers, a handful per attempt written by the sender and read by
    // the API: sorted as the API shows them, and neither side hashes each name.
    config.btree_map([".hookline.v1.Attempt.request_headers"]);
    config.compile_protos(&[file], &[root])?;
    Ok(())
}
