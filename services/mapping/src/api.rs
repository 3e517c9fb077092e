//! The gRPC surface of mapping.

use sha2::{Digest, Sha256};
use syncline_domain::{ApiError, ErrorCode, TenantContext, Violation};
use syncline_mapping_plan::CompiledPlan;
use syncline_proto::common::v1::Provider;
use syncline_proto::mapping::v1::mapping_service_server::MappingService;
use syncline_proto::mapping::v1::preview_mapping_request::Mapping as PreviewSource;
use syncline_proto::mapping::v1::{
    DeployManifestRequest, DeployManifestResponse, DiffManifestVersionsRequest,
    DiffManifestVersionsResponse, GetInstallationRequest, GetInstallationResponse,
    GetManifestRequest, GetManifestResponse, GetMappingPlanRequest, GetMappingPlanResponse,
    Installation, ListManifestVersionsRequest, ListManifestVersionsResponse, Manifest,
    MappingDirection, MappingPlan, PreviewIssue, PreviewMappingRequest, PreviewMappingResponse,
    SaveFieldMappingsRequest, SaveFieldMappingsResponse, UpdateInstallationRequest,
    UpdateInstallationResponse, ValidateFieldMappingsRequest, ValidateFieldMappingsResponse,
    ValidateManifestRequest, ValidateManifestResponse,
};
use syncline_proto::mapping::v1::{FieldMappingViolation, ViolationKind};
use syncline_service_kit::pagination::{self, PageRequest};
use syncline_service_kit::{tenant, time};
use tonic::{Request, Response, Status};

use crate::manifest::{self, ManifestDoc};
use crate::mappings;
use crate::remote::{Remote, SchemaSnapshot};
use crate::store::Store;

/// Implements `syncline.mapping.v1.MappingService`.
#[derive(Debug, Clone)]
pub struct MappingApi {
    store: Store,
    remote: Remote,
}

impl MappingApi {
    pub fn new(store: Store, remote: Remote) -> Self {
        Self { store, remote }
    }

    /// Fills the installation's provider from auth-vault when it is not known yet; an
    /// unknown connection (or another tenant's) is NOT_FOUND.
    async fn fill_provider(
        &self,
        tenant: &TenantContext,
        installation: &mut Installation,
    ) -> Result<(), Status> {
        if installation.provider == Provider::Unspecified as i32 {
            let provider = self
                .remote
                .provider(tenant, &installation.connection_id)
                .await?;
            installation.provider = provider as i32;
        }
        Ok(())
    }

    /// What schema drift broke in `plan`, checked against the connection's current schema
    /// version: `(version, violations)`; `None` when the connection has no schema.
    async fn plan_drift(
        &self,
        tenant: &TenantContext,
        plan: &MappingPlan,
    ) -> Result<Option<(i64, Vec<FieldMappingViolation>)>, Status> {
        let Some(version) = self
            .remote
            .latest_version(tenant, &plan.connection_id)
            .await?
        else {
            return Ok(None);
        };
        if version == plan.schema_version {
            return Ok(Some((version, Vec::new())));
        }
        let (_, doc) = self
            .manifest_doc(tenant, Some(plan.manifest_version))
            .await?
            .ok_or_else(|| ApiError::internal("a plan names a missing manifest version"))?;
        let names: Vec<String> = plan
            .objects
            .iter()
            .map(|o| o.provider_object.clone())
            .collect();
        let schema = self
            .remote
            .objects_at(tenant, &plan.connection_id, version, names)
            .await?;
        Ok(Some((version, mappings::plan_drift(&doc, plan, &schema))))
    }

    /// Flags what schema drift broke in the installation's latest plan (issues, state).
    async fn flag_drift(
        &self,
        tenant: &TenantContext,
        installation: &mut Installation,
    ) -> Result<(), Status> {
        if installation.plan_version == 0 {
            return Ok(());
        }
        let Some(plan) = self
            .store
            .mapping_plan(tenant, &installation.connection_id, None)
            .await?
        else {
            return Ok(());
        };
        if let Some((version, drift)) = self.plan_drift(tenant, &plan).await? {
            mappings::flag_drift(installation, version, &drift);
        }
        Ok(())
    }

    /// The connection's schema for the CRM objects named (described first if it never
    /// was).
    async fn schema(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
        names: Vec<String>,
    ) -> Result<SchemaSnapshot, Status> {
        self.remote
            .objects(tenant, connection_id, names, true)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::FailedPrecondition,
                    "the connection's schema could not be discovered",
                )
                .into_status()
            })
    }

    /// A stored manifest version (`None`: the latest), parsed.
    async fn manifest_doc(
        &self,
        tenant: &TenantContext,
        version: Option<i64>,
    ) -> Result<Option<(Manifest, ManifestDoc)>, ApiError> {
        let Some(manifest) = self.store.manifest(tenant, version).await? else {
            return Ok(None);
        };
        // Stored manifests were valid when deployed; parse failures mean stored data broke.
        let doc = manifest::validate(&manifest.content).doc.ok_or_else(|| {
            ApiError::internal(format!(
                "stored manifest version {} does not parse",
                manifest.version
            ))
        })?;
        Ok(Some((manifest, doc)))
    }

    /// The connection's installation (or the latest manifest's defaults) with the manifest
    /// it refers to.
    async fn installation_with_manifest(
        &self,
        tenant: &TenantContext,
        connection_id: &str,
    ) -> Result<(Installation, ManifestDoc, bool), ApiError> {
        match self.store.installation(tenant, connection_id).await? {
            Some(installation) => {
                let (_, doc) = self
                    .manifest_doc(tenant, Some(installation.manifest_version))
                    .await?
                    .ok_or_else(|| {
                        ApiError::internal("installation names a missing manifest version")
                    })?;
                Ok((installation, doc, true))
            }
            None => {
                let (manifest, doc) = self
                    .manifest_doc(tenant, None)
                    .await?
                    .ok_or_else(no_manifest)?;
                let installation =
                    mappings::default_installation(connection_id, manifest.version, &doc);
                Ok((installation, doc, false))
            }
        }
    }
}

fn no_manifest() -> ApiError {
    ApiError::new(
        ErrorCode::FailedPrecondition,
        "no manifest is deployed for this project",
    )
}

fn require_connection(connection_id: &str) -> Result<(), ApiError> {
    if connection_id.is_empty() {
        Err(ApiError::invalid(vec![Violation::required(
            "connection_id",
        )]))
    } else {
        Ok(())
    }
}

fn version_arg(field: &str, version: i64) -> Result<Option<i64>, ApiError> {
    match version {
        0 => Ok(None),
        v if v > 0 => Ok(Some(v)),
        _ => Err(ApiError::invalid(vec![Violation::new(
            field,
            "NEGATIVE",
            "must not be negative (0 reads the latest)",
        )])),
    }
}

/// Manifest errors as field violations of `content`, each `line:column: path: message`.
fn manifest_violations(errors: &[manifest::Issue]) -> Vec<Violation> {
    errors
        .iter()
        .map(|e| Violation::new("content", e.code.to_uppercase(), e.located()))
        .collect()
}

/// Field-mapping violations as request field violations.
fn mapping_violations(
    objects: &[syncline_proto::mapping::v1::ObjectMapping],
    violations: &[syncline_proto::mapping::v1::FieldMappingViolation],
) -> Vec<Violation> {
    violations
        .iter()
        .map(|v| {
            let object = objects
                .iter()
                .position(|o| o.object == v.object)
                .map_or_else(|| "objects".to_owned(), |i| format!("objects[{i}]"));
            let field = match usize::try_from(v.mapping_index)
                .ok()
                .and_then(|i| objects.iter().find(|o| o.object == v.object)?.fields.get(i))
            {
                Some(mapping) => {
                    let at = format!("{object}.fields[{}]", v.mapping_index);
                    // Name the side's field when the violation is about one field.
                    let position = |names: &[String], name: &str| {
                        names.iter().position(|n| !name.is_empty() && n == name)
                    };
                    let kind = ViolationKind::try_from(v.kind).unwrap_or_default();
                    match kind {
                        ViolationKind::ModelFieldUnknown => {
                            match position(&mapping.model_fields, &v.model_field) {
                                Some(j) => format!("{at}.model_fields[{j}]"),
                                None => at,
                            }
                        }
                        ViolationKind::ProviderFieldUnknown
                        | ViolationKind::TypeIncompatible
                        | ViolationKind::PicklistValueUnknown => {
                            match position(&mapping.provider_fields, &v.provider_field) {
                                Some(j) => format!("{at}.provider_fields[{j}]"),
                                None => at,
                            }
                        }
                        _ => at,
                    }
                }
                None if v.mapping_index >= 0 => format!("{object}.fields[{}]", v.mapping_index),
                None => object,
            };
            let kind = ViolationKind::try_from(v.kind)
                .map(|k| {
                    k.as_str_name()
                        .trim_start_matches("VIOLATION_KIND_")
                        .to_owned()
                })
                .unwrap_or_else(|_| "INVALID".into());
            let named = match (v.model_field.is_empty(), v.provider_field.is_empty()) {
                (false, _) => format!("{}: {}", v.model_field, v.message),
                (true, false) => format!("{}: {}", v.provider_field, v.message),
                (true, true) => v.message.clone(),
            };
            Violation::new(field, kind, named)
        })
        .collect()
}

#[tonic::async_trait]
impl MappingService for MappingApi {
    async fn get_manifest(
        &self,
        request: Request<GetManifestRequest>,
    ) -> Result<Response<GetManifestResponse>, Status> {
        let tenant = tenant(&request)?;
        let version = match request.get_ref().version {
            0 => None,
            v if v > 0 => Some(v),
            _ => {
                return Err(ApiError::invalid(vec![Violation::new(
                    "version",
                    "NEGATIVE",
                    "must not be negative (0 reads the latest)",
                )])
                .into());
            }
        };
        let manifest = self
            .store
            .manifest(tenant, version)
            .await?
            .ok_or_else(|| ApiError::not_found("manifest"))?;
        Ok(Response::new(GetManifestResponse {
            manifest: Some(manifest),
        }))
    }

    async fn list_manifest_versions(
        &self,
        request: Request<ListManifestVersionsRequest>,
    ) -> Result<Response<ListManifestVersionsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let below = pagination::versions_below(&page)?;
        let mut manifests = self
            .store
            .manifests(tenant, below, page.fetch_limit())
            .await?;
        let next_page_token = pagination::finish_versions(&page, &mut manifests, |m| m.version);
        Ok(Response::new(ListManifestVersionsResponse {
            manifests,
            next_page_token,
        }))
    }

    async fn get_installation(
        &self,
        request: Request<GetInstallationRequest>,
    ) -> Result<Response<GetInstallationResponse>, Status> {
        let tenant = tenant(&request)?;
        let connection_id = &request.get_ref().connection_id;
        if connection_id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("connection_id")]).into());
        }
        // Connections without choices (or another tenant's) get the manifest's defaults;
        // nothing of another tenant's installation shows.
        let (mut installation, doc, stored) = self
            .installation_with_manifest(tenant, connection_id)
            .await?;
        self.fill_provider(tenant, &mut installation).await?;
        if stored {
            self.flag_drift(tenant, &mut installation).await?;
        } else {
            mappings::refresh_state(&mut installation, &doc, None);
        }
        Ok(Response::new(GetInstallationResponse {
            installation: Some(installation),
        }))
    }

    async fn validate_manifest(
        &self,
        request: Request<ValidateManifestRequest>,
    ) -> Result<Response<ValidateManifestResponse>, Status> {
        tenant(&request)?;
        let checked = manifest::validate(&request.get_ref().content);
        Ok(Response::new(ValidateManifestResponse {
            valid: checked.is_valid(),
            errors: checked
                .errors
                .iter()
                .map(manifest::Issue::to_proto)
                .collect(),
            warnings: checked
                .warnings
                .iter()
                .map(manifest::Issue::to_proto)
                .collect(),
        }))
    }

    async fn deploy_manifest(
        &self,
        request: Request<DeployManifestRequest>,
    ) -> Result<Response<DeployManifestResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        let checked = manifest::validate(&message.content);
        let Some(doc) = checked.valid_doc() else {
            return Err(ApiError::invalid(manifest_violations(&checked.errors)).into());
        };
        let hash = Sha256::digest(message.content.as_bytes());
        let content_hash = hash.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let manifest = Manifest {
            version: 0,
            objects: doc.objects.keys().cloned().collect(),
            content: message.content,
            content_hash,
            description: message.description,
            create_time: None,
        };
        let (manifest, created) = self.store.deploy_manifest(&tenant, manifest).await?;
        tracing::info!(version = manifest.version, created, "manifest deployed");
        Ok(Response::new(DeployManifestResponse {
            manifest: Some(manifest),
            created,
        }))
    }

    async fn diff_manifest_versions(
        &self,
        request: Request<DiffManifestVersionsRequest>,
    ) -> Result<Response<DiffManifestVersionsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        if message.from_version <= 0 {
            return Err(ApiError::invalid(vec![Violation::new(
                "from_version",
                "NOT_POSITIVE",
                "must be a version (1 or more)",
            )])
            .into());
        }
        let to = version_arg("to_version", message.to_version)?;
        let (old, old_doc) = self
            .manifest_doc(tenant, Some(message.from_version))
            .await?
            .ok_or_else(|| ApiError::not_found("manifest version"))?;
        let (new, new_doc) = self
            .manifest_doc(tenant, to)
            .await?
            .ok_or_else(|| ApiError::not_found("manifest version"))?;
        let (changes, unified_diff) = manifest::diff(
            &old.content,
            &old_doc,
            &new.content,
            &new_doc,
            &format!("version {}", old.version),
            &format!("version {}", new.version),
        );
        Ok(Response::new(DiffManifestVersionsResponse {
            changes,
            unified_diff,
        }))
    }

    async fn update_installation(
        &self,
        request: Request<UpdateInstallationRequest>,
    ) -> Result<Response<UpdateInstallationResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        let update = message
            .installation
            .ok_or_else(|| ApiError::invalid(vec![Violation::required("installation")]))?;
        if update.connection_id.is_empty() {
            return Err(
                ApiError::invalid(vec![Violation::required("installation.connection_id")]).into(),
            );
        }
        let mut paths = message.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            paths = vec!["manifest_version".into(), "objects".into()];
        }
        let mut violations = Vec::new();
        for path in &paths {
            if !matches!(path.as_str(), "manifest_version" | "objects") {
                violations.push(Violation::new(
                    "update_mask",
                    "NOT_UPDATABLE",
                    format!("`{path}` cannot be updated (manifest_version, objects can)"),
                ));
            }
        }
        if !violations.is_empty() {
            return Err(ApiError::invalid(violations).into());
        }
        let (mut installation, mut doc, _) = self
            .installation_with_manifest(&tenant, &update.connection_id)
            .await?;
        self.fill_provider(&tenant, &mut installation).await?;
        if paths.iter().any(|p| p == "manifest_version") {
            if update.manifest_version <= 0 {
                return Err(ApiError::invalid(vec![Violation::new(
                    "installation.manifest_version",
                    "NOT_POSITIVE",
                    "must be a deployed manifest version",
                )])
                .into());
            }
            let (_, newer) = self
                .manifest_doc(&tenant, Some(update.manifest_version))
                .await?
                .ok_or_else(|| {
                    ApiError::invalid(vec![Violation::new(
                        "installation.manifest_version",
                        "UNKNOWN_VERSION",
                        "is not a deployed manifest version",
                    )])
                })?;
            installation.manifest_version = update.manifest_version;
            doc = newer;
            // Choices for objects the newer manifest dropped go with them.
            installation
                .objects
                .retain(|s| doc.objects.get(&s.object).is_some());
        }
        if paths.iter().any(|p| p == "objects") {
            let violations = mappings::check_selections(&doc, &update.objects);
            if !violations.is_empty() {
                return Err(ApiError::invalid(violations).into());
            }
            installation.objects = update
                .objects
                .into_iter()
                .map(|mut s| {
                    s.issue.clear();
                    s
                })
                .collect();
        }
        let plan = self
            .store
            .mapping_plan(&tenant, &installation.connection_id, None)
            .await?;
        mappings::refresh_state(&mut installation, &doc, plan.as_ref());
        let updated = self.store.put_installation(&tenant, &installation).await?;
        installation.update_time = Some(time::timestamp(updated));
        // Drift is computed on read, never stored: it follows the current schema version.
        self.flag_drift(&tenant, &mut installation).await?;
        Ok(Response::new(UpdateInstallationResponse {
            installation: Some(installation),
        }))
    }

    async fn validate_field_mappings(
        &self,
        request: Request<ValidateFieldMappingsRequest>,
    ) -> Result<Response<ValidateFieldMappingsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        require_connection(&message.connection_id)?;
        let (mut installation, doc, _) = self
            .installation_with_manifest(tenant, &message.connection_id)
            .await?;
        self.fill_provider(tenant, &mut installation).await?;
        let names = mappings::target_objects(&doc, &installation, &message.objects);
        let schema = self.schema(tenant, &message.connection_id, names).await?;
        let violations =
            mappings::validate_with_schema(&doc, &installation, &message.objects, &schema);
        Ok(Response::new(ValidateFieldMappingsResponse {
            valid: violations.is_empty(),
            violations,
            schema_version: schema.version,
        }))
    }

    async fn save_field_mappings(
        &self,
        request: Request<SaveFieldMappingsRequest>,
    ) -> Result<Response<SaveFieldMappingsResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        require_connection(&message.connection_id)?;
        if message.objects.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("objects")]).into());
        }
        let (mut installation, doc, _) = self
            .installation_with_manifest(&tenant, &message.connection_id)
            .await?;
        self.fill_provider(&tenant, &mut installation).await?;
        // One schema version for the request's objects and every other saved one, so the
        // plan compiled from all of them is checked against the same version.
        let saved = self
            .store
            .field_mappings(&tenant, &message.connection_id)
            .await?;
        let mut names = mappings::target_objects(&doc, &installation, &message.objects);
        names.extend(mappings::target_objects(&doc, &installation, &saved));
        let schema = self.schema(&tenant, &message.connection_id, names).await?;
        let violations =
            mappings::validate_with_schema(&doc, &installation, &message.objects, &schema);
        if !violations.is_empty() {
            return Err(
                ApiError::invalid(mapping_violations(&message.objects, &violations)).into(),
            );
        }
        // Keep the CRM object the tenant mapped to in the installation's choices.
        for mapping in &message.objects {
            let chosen = mappings::selection(&installation, &doc, &mapping.object);
            let provider_object = mappings::provider_object(mapping, chosen.as_ref());
            match installation
                .objects
                .iter_mut()
                .find(|s| s.object == mapping.object)
            {
                Some(s) => s.provider_object = provider_object,
                None => {
                    if let Some(mut s) = chosen {
                        s.provider_object = provider_object;
                        installation.objects.push(s);
                    }
                }
            }
        }
        let plan = self
            .store
            .save_field_mappings(
                &tenant,
                &message.connection_id,
                &message.objects,
                |all, version| {
                    let (plan, stale) =
                        mappings::compile_plan(&doc, &installation, all, version, &schema)
                            .map_err(|e| {
                                ApiError::invalid(vec![Violation::new(
                                    "objects",
                                    "INVALID_TRANSFORM",
                                    e.to_string(),
                                )])
                            })?;
                    let mut installation = installation.clone();
                    mappings::refresh_state(&mut installation, &doc, Some(&plan));
                    for (object, issue) in stale {
                        if let Some(s) =
                            installation.objects.iter_mut().find(|s| s.object == object)
                        {
                            s.issue = issue;
                        }
                    }
                    Ok((plan, installation))
                },
            )
            .await?;
        tracing::info!(plan_version = plan.plan_version, "mapping plan compiled");
        Ok(Response::new(SaveFieldMappingsResponse {
            plan_version: plan.plan_version,
            plan: Some(plan),
        }))
    }

    async fn get_mapping_plan(
        &self,
        request: Request<GetMappingPlanRequest>,
    ) -> Result<Response<GetMappingPlanResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        require_connection(&message.connection_id)?;
        let version = version_arg("plan_version", message.plan_version)?;
        let mut plan = self
            .store
            .mapping_plan(tenant, &message.connection_id, version)
            .await?
            .ok_or_else(|| ApiError::not_found("mapping plan"))?;
        if let Some((schema_version, drift)) = self.plan_drift(tenant, &plan).await? {
            plan.checked_schema_version = schema_version;
            if !drift.is_empty() && !message.include_broken {
                let named: Vec<String> = drift
                    .iter()
                    .map(|v| format!("{}: {}", v.object, v.message))
                    .collect();
                let fields: Vec<String> = drift
                    .iter()
                    .map(|v| format!("{}.{}", v.object, v.provider_field))
                    .collect();
                return Err(ApiError::new(
                    ErrorCode::FailedPrecondition,
                    format!(
                        "mapping plan {} is broken by schema drift (schema version {schema_version}); save the mappings again: {}",
                        plan.plan_version,
                        named.join("; ")
                    ),
                )
                .with_metadata("broken_fields", fields.join(","))
                .into());
            }
            plan.drift_violations = drift;
        }
        Ok(Response::new(GetMappingPlanResponse { plan: Some(plan) }))
    }

    async fn preview_mapping(
        &self,
        request: Request<PreviewMappingRequest>,
    ) -> Result<Response<PreviewMappingResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        require_connection(&message.connection_id)?;
        let mut violations = Vec::new();
        if message.object.is_empty() {
            violations.push(Violation::required("object"));
        }
        let direction = MappingDirection::try_from(message.direction).unwrap_or_default();
        if !matches!(
            direction,
            MappingDirection::Inbound | MappingDirection::Outbound
        ) {
            violations.push(Violation::new(
                "direction",
                "INVALID_ENUM",
                "must be INBOUND or OUTBOUND",
            ));
        }
        let Some(record) = message.record else {
            violations.push(Violation::required("record"));
            return Err(ApiError::invalid(violations).into());
        };
        let plan: MappingPlan = match message.mapping {
            None => {
                violations.push(Violation::required("mapping"));
                return Err(ApiError::invalid(violations).into());
            }
            Some(PreviewSource::PlanVersion(v)) if v <= 0 => {
                violations.push(Violation::new(
                    "plan_version",
                    "NOT_POSITIVE",
                    "name a stored plan version",
                ));
                return Err(ApiError::invalid(violations).into());
            }
            Some(PreviewSource::PlanVersion(v)) => {
                if !violations.is_empty() {
                    return Err(ApiError::invalid(violations).into());
                }
                self.store
                    .mapping_plan(&tenant, &message.connection_id, Some(v))
                    .await?
                    .ok_or_else(|| ApiError::not_found("mapping plan"))?
            }
            Some(PreviewSource::Draft(draft)) => {
                if draft.object != message.object {
                    violations.push(Violation::new(
                        "draft.object",
                        "MISMATCH",
                        "must be the previewed object",
                    ));
                }
                if !violations.is_empty() {
                    return Err(ApiError::invalid(violations).into());
                }
                let (mut installation, doc, _) = self
                    .installation_with_manifest(&tenant, &message.connection_id)
                    .await?;
                self.fill_provider(&tenant, &mut installation).await?;
                let drafts = std::slice::from_ref(&draft);
                let names = mappings::target_objects(&doc, &installation, drafts);
                let schema = self.schema(&tenant, &message.connection_id, names).await?;
                let found = mappings::validate_with_schema(&doc, &installation, drafts, &schema);
                // Required fields may still be missing while a mapping is being edited.
                let blocking: Vec<_> = found
                    .into_iter()
                    .filter(|v| {
                        v.kind
                            != syncline_proto::mapping::v1::ViolationKind::RequiredUnmapped as i32
                    })
                    .collect();
                if !blocking.is_empty() {
                    let violations = mapping_violations(drafts, &blocking)
                        .into_iter()
                        .map(|mut v| {
                            v.field = v.field.replacen("objects[0]", "draft", 1);
                            v
                        })
                        .collect();
                    return Err(ApiError::invalid(violations).into());
                }
                let spec = doc
                    .objects
                    .get(&draft.object)
                    .ok_or_else(|| ApiError::not_found("object"))?;
                let chosen = mappings::selection(&installation, &doc, &draft.object);
                let provider_object = mappings::provider_object(&draft, chosen.as_ref());
                let mut object = mappings::object_plan(spec, &draft, provider_object);
                if let Some(described) = schema.object(&object.provider_object) {
                    crate::schema_check::fill_target_types(&mut object, described);
                }
                MappingPlan {
                    connection_id: message.connection_id.clone(),
                    objects: vec![object],
                    schema_version: schema.version,
                    ..MappingPlan::default()
                }
            }
        };
        if !violations.is_empty() {
            return Err(ApiError::invalid(violations).into());
        }
        let compiled = CompiledPlan::compile(&plan).map_err(|e| {
            ApiError::invalid(vec![Violation::new(
                "mapping",
                "INVALID_TRANSFORM",
                e.to_string(),
            )])
        })?;
        let object = compiled.object(&message.object).ok_or_else(|| {
            ApiError::invalid(vec![Violation::new(
                "object",
                "NOT_IN_PLAN",
                "the plan has no mappings for this object",
            )])
        })?;
        let mapped = if direction == MappingDirection::Inbound {
            object.apply_inbound(&record)
        } else {
            object.apply_outbound(&record)
        };
        let issues = mapped
            .errors
            .iter()
            .map(|e| PreviewIssue {
                target_field: e.field.to_string(),
                message: e.message.clone(),
            })
            .collect();
        Ok(Response::new(PreviewMappingResponse {
            record: Some(mapped.into_record()),
            issues,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use syncline_proto::mapping::v1::{FieldMapping, ObjectMapping};

    #[test]
    fn violations_are_named_down_to_the_field_they_concern() {
        let objects = vec![ObjectMapping {
            object: "project".into(),
            provider_object: "Project__c".into(),
            fields: vec![FieldMapping {
                model_fields: vec!["a".into(), "b".into()],
                provider_fields: vec!["X__c".into(), "Y__c".into()],
                ..FieldMapping::default()
            }],
        }];
        let violation =
            |index: i32, model: &str, provider: &str, kind: ViolationKind| FieldMappingViolation {
                object: "project".into(),
                mapping_index: index,
                model_field: model.into(),
                provider_field: provider.into(),
                kind: kind as i32,
                message: "m".into(),
            };
        let named = mapping_violations(
            &objects,
            &[
                violation(0, "a", "Y__c", ViolationKind::ProviderFieldUnknown),
                violation(0, "b", "X__c", ViolationKind::ModelFieldUnknown),
                violation(0, "a", "X__c", ViolationKind::NotWritable),
                violation(-1, "", "", ViolationKind::RequiredUnmapped),
                violation(7, "", "", ViolationKind::DuplicateTarget),
            ],
        );
        let fields: Vec<(&str, &str)> = named
            .iter()
            .map(|v| (v.field.as_str(), v.reason.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (
                    "objects[0].fields[0].provider_fields[1]",
                    "PROVIDER_FIELD_UNKNOWN"
                ),
                (
                    "objects[0].fields[0].model_fields[1]",
                    "MODEL_FIELD_UNKNOWN"
                ),
                ("objects[0].fields[0]", "NOT_WRITABLE"),
                ("objects[0]", "REQUIRED_UNMAPPED"),
                ("objects[0].fields[7]", "DUPLICATE_TARGET"),
            ]
        );
        assert_eq!(
            named[0].description, "a: m",
            "the model field is named first"
        );
    }
}
