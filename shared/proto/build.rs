//! Compiles every `.proto` under `proto/` with protox (no system protoc), generates the
//! Rust code with tonic-prost-build, writes the descriptor set for server reflection and
//! derives the gateway's public/internal service lists from the `visibility` option.

use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

const VISIBILITY_OPTION: &str = "syncline.common.v1.visibility";
const VISIBILITY_PUBLIC: i32 = 1;
const VISIBILITY_INTERNAL: i32 = 2;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files under {}", proto_root.display()).into());
    }

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;

    // The full set (imports included, options kept as written) serves reflection.
    fs::write(
        out_dir.join("syncline_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    write_service_lists(&compiler, &out_dir)?;

    // Well-known types map to prost-types; their descriptors stay in the set because
    // prost-build resolves every referenced message from it.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Methods a service has not built yet answer UNIMPLEMENTED without boilerplate;
        // docs/architecture.md lists which ones.
        .generate_default_stubs(true)
        // A record's fields decode without hashing every key, encode in key order (the same
        // record always has the same bytes) and iterate in a stable order.
        .btree_map(".syncline.common.v1.Record.fields")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Box<dyn Error>> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}

/// Writes `services.rs` with `PUBLIC_SERVICES` and `INTERNAL_SERVICES`, failing the build
/// when a service does not declare its visibility.
fn write_service_lists(compiler: &protox::Compiler, out_dir: &Path) -> Result<(), Box<dyn Error>> {
    let pool = compiler.descriptor_pool();
    let option = pool
        .get_extension_by_name(VISIBILITY_OPTION)
        .ok_or("the syncline.common.v1.visibility option is not defined")?;
    let mut public = Vec::new();
    let mut internal = Vec::new();
    for service in pool.services() {
        let name = service.full_name().to_owned();
        if !name.starts_with("syncline.") {
            continue;
        }
        let options = service.options();
        let visibility = if options.has_extension(&option) {
            options.get_extension(&option).as_enum_number()
        } else {
            None
        };
        match visibility {
            Some(VISIBILITY_PUBLIC) => public.push(name),
            Some(VISIBILITY_INTERNAL) => internal.push(name),
            _ => {
                return Err(format!(
                    "service {name} must set option ({VISIBILITY_OPTION}) to VISIBILITY_PUBLIC or VISIBILITY_INTERNAL"
                )
                .into());
            }
        }
    }
    public.sort();
    internal.sort();
    let mut out = String::new();
    for (constant, doc, names) in [
        (
            "PUBLIC_SERVICES",
            "Fully-qualified names of the services the gateway forwards to (visibility PUBLIC).",
            &public,
        ),
        (
            "INTERNAL_SERVICES",
            "Fully-qualified names of the service-to-service APIs the gateway never forwards (visibility INTERNAL).",
            &internal,
        ),
    ] {
        writeln!(out, "/// {doc}")?;
        writeln!(out, "pub const {constant}: &[&str] = &[")?;
        for name in names {
            writeln!(out, "    {name:?},")?;
        }
        writeln!(out, "];")?;
    }
    fs::write(out_dir.join("services.rs"), out)?;
    Ok(())
}
