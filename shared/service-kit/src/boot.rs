//! What every backend does before it serves: open its database, build its credentials
//! check, health and reflection.

use std::sync::Arc;

use syncline_config::{ServiceName, SynclineConfig};
use syncline_storage::{Database, EmbeddedMigration};
use tonic::transport::Server;
use tonic::transport::server::Router;

use crate::internal_auth::InternalAuth;
use crate::layer::ContextLayer;
use crate::server::{ServiceError, reflection};

/// A backend ready to add its own gRPC service and serve.
pub struct ServiceBoot {
    /// The service's own database, migrated.
    pub database: Database,
    /// Verifies (and signs) internal credentials.
    pub auth: Arc<InternalAuth>,
    /// Marks the service SERVING / NOT_SERVING.
    pub health: tonic_health::server::HealthReporter,
    /// Health and reflection already added, behind the [`ContextLayer`].
    pub router: Router<tower::layer::util::Stack<ContextLayer, tower::layer::util::Identity>>,
}

impl std::fmt::Debug for ServiceBoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceBoot").finish_non_exhaustive()
    }
}

/// Opens `service`'s database with `migrations` and prepares its server.
pub async fn boot(
    config: &SynclineConfig,
    service: ServiceName,
    migrations: &[EmbeddedMigration],
) -> Result<ServiceBoot, ServiceError> {
    let secret = config.internal_auth.secret.as_ref().ok_or_else(|| {
        ServiceError::Config("invalid configuration: `internal_auth.secret` is not set".into())
    })?;
    let auth = Arc::new(InternalAuth::new(secret));
    let database = Database::open(&config.storage, &config.data_dir, service, migrations)
        .await
        .map_err(|e| ServiceError::Storage(Box::new(e)))?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let (reflection_v1, reflection_v1alpha) = reflection(&[syncline_proto::FILE_DESCRIPTOR_SET])?;
    let router = Server::builder()
        .layer(ContextLayer::new(
            auth.clone(),
            syncline_proto::INTERNAL_SERVICES,
        ))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok(ServiceBoot {
        database,
        auth,
        health,
        router,
    })
}
