//! Generated protobuf and gRPC code for every Syncline API, with the descriptor set for reflection.
//!
//! Modules follow the proto packages: `syncline.<area>.v1` is `syncline_proto::<area>::v1`.
//! Each holds the messages, a `<service>_client` and a `<service>_server` module per service.

/// Includes the code generated for one proto package.
macro_rules! include_generated {
    ($package:literal) => {
        include!(concat!(env!("OUT_DIR"), "/", $package, ".rs"));
    };
}

pub mod wire;

/// Shared types: providers, records, connection status, lifecycle events, error reasons,
/// the `visibility` service option.
pub mod common {
    /// `syncline.common.v1`
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        include_generated!("syncline.common.v1");
    }
}

/// Provider apps, connections and credentials (`AuthVaultService`, public) and tokens
/// (`TokenService`, internal).
pub mod authvault {
    /// `syncline.authvault.v1`
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        include_generated!("syncline.authvault.v1");
    }
}

/// Per-connection schema catalog (`SchemaService`).
pub mod schema {
    /// `syncline.schema.v1`
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        include_generated!("syncline.schema.v1");
    }
}

/// Manifests, installations, field mappings and plans (`MappingService`).
pub mod mapping {
    /// `syncline.mapping.v1`
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        include_generated!("syncline.mapping.v1");
    }
}

/// Sync runs, change streams, writes, webhooks and dead letters (`SyncService`, public) and
/// event intake (`IntakeService`, internal).
pub mod sync {
    /// `syncline.sync.v1`
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        include_generated!("syncline.sync.v1");
    }
}

/// Conflict policies, three-way resolution and the review queue (`ConflictService`).
pub mod conflict {
    /// `syncline.conflict.v1`
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        include_generated!("syncline.conflict.v1");
    }
}

/// Tokens for the embedded self-serve mapping page (`EmbedService`, served by the gateway).
pub mod embed {
    /// `syncline.embed.v1`
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod v1 {
        include_generated!("syncline.embed.v1");
    }
}

/// Encoded `google.protobuf.FileDescriptorSet` of every Syncline proto and its imports,
/// with source info, for gRPC server reflection (`tonic-reflection`).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/syncline_descriptor.bin"));

// `PUBLIC_SERVICES` and `INTERNAL_SERVICES`, derived at build time from each service's
// `(syncline.common.v1.visibility)` option; the build fails when a service omits it.
include!(concat!(env!("OUT_DIR"), "/services.rs"));

/// Whether the gateway may forward a call to `service` (a fully-qualified service name such as
/// `syncline.sync.v1.SyncService`, the first segment of a gRPC path).
pub fn is_public_service(service: &str) -> bool {
    PUBLIC_SERVICES.contains(&service)
}

/// The reason string carried in `google.rpc.ErrorInfo.reason` (domain `syncline.dev`) for
/// `reason`, e.g. `NEEDS_REAUTH`.
pub fn error_info_reason(reason: common::v1::ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ERROR_REASON_").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    use super::*;

    fn descriptor_services() -> Vec<String> {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes");
        set.file
            .iter()
            .flat_map(|file| {
                file.service
                    .iter()
                    .map(move |service| format!("{}.{}", file.package(), service.name()))
            })
            .collect()
    }

    #[test]
    fn every_service_is_in_exactly_one_list() {
        let services = descriptor_services();
        assert!(!services.is_empty());
        for service in &services {
            let public = PUBLIC_SERVICES.contains(&service.as_str());
            let internal = INTERNAL_SERVICES.contains(&service.as_str());
            assert!(
                public ^ internal,
                "{service} must be in exactly one of PUBLIC_SERVICES and INTERNAL_SERVICES"
            );
        }
        for listed in PUBLIC_SERVICES.iter().chain(INTERNAL_SERVICES) {
            assert!(
                services.iter().any(|service| service == listed),
                "{listed} is listed but not in the descriptor set"
            );
        }
    }

    #[test]
    fn service_lists_match_the_agreed_split() {
        assert_eq!(
            PUBLIC_SERVICES,
            [
                "syncline.authvault.v1.AuthVaultService",
                "syncline.conflict.v1.ConflictService",
                "syncline.embed.v1.EmbedService",
                "syncline.mapping.v1.MappingService",
                "syncline.schema.v1.SchemaService",
                "syncline.sync.v1.SyncService",
            ]
        );
        assert_eq!(
            INTERNAL_SERVICES,
            [
                "syncline.authvault.v1.TokenService",
                "syncline.sync.v1.IntakeService",
            ]
        );
        assert!(is_public_service("syncline.sync.v1.SyncService"));
        assert!(!is_public_service("syncline.authvault.v1.TokenService"));
    }

    #[test]
    fn error_reasons_drop_their_prefix() {
        assert_eq!(
            error_info_reason(common::v1::ErrorReason::NeedsReauth),
            "NEEDS_REAUTH"
        );
        assert_eq!(
            error_info_reason(common::v1::ErrorReason::Unspecified),
            "UNSPECIFIED"
        );
    }
}
