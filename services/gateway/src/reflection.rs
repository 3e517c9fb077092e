//! Reflection on the gateway describes the public API only.

use prost::Message;
use prost_types::FileDescriptorSet;

/// The suite's descriptor set without the internal services.
pub(crate) fn public_descriptor_set() -> Result<Vec<u8>, prost::DecodeError> {
    let mut set = FileDescriptorSet::decode(syncline_proto::FILE_DESCRIPTOR_SET)?;
    for file in &mut set.file {
        let package = file.package().to_owned();
        file.service.retain(|service| {
            let full = format!("{package}.{}", service.name());
            !package.starts_with("syncline.") || syncline_proto::is_public_service(&full)
        });
    }
    Ok(set.encode_to_vec())
}
