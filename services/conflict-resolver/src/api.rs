//! The gRPC surface of conflict-resolver.

use syncline_domain::{ApiError, Violation};
use syncline_proto::conflict::v1::conflict_service_server::ConflictService;
use syncline_proto::conflict::v1::{
    ConflictState, GetConflictRequest, GetConflictResponse, GetPolicyRequest, GetPolicyResponse,
    ListConflictsRequest, ListConflictsResponse, UpdatePolicyRequest, UpdatePolicyResponse,
};
use syncline_service_kit::pagination::PageRequest;
use syncline_service_kit::{tenant, time};
use tonic::{Request, Response, Status};

use crate::policy::{apply_update, default_policy};
use crate::store::Store;

/// Implements `syncline.conflict.v1.ConflictService`.
#[derive(Debug, Clone)]
pub struct ConflictApi {
    store: Store,
}

impl ConflictApi {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl ConflictService for ConflictApi {
    async fn get_policy(
        &self,
        request: Request<GetPolicyRequest>,
    ) -> Result<Response<GetPolicyResponse>, Status> {
        let tenant = tenant(&request)?;
        let policy = match self.store.policy(tenant).await? {
            Some((mut policy, updated)) => {
                policy.update_time = Some(time::timestamp(updated));
                policy
            }
            None => default_policy(),
        };
        Ok(Response::new(GetPolicyResponse {
            policy: Some(policy),
        }))
    }

    async fn update_policy(
        &self,
        request: Request<UpdatePolicyRequest>,
    ) -> Result<Response<UpdatePolicyResponse>, Status> {
        let tenant = tenant(&request)?.clone();
        let message = request.into_inner();
        let update = message
            .policy
            .ok_or_else(|| ApiError::invalid(vec![Violation::required("policy")]))?;
        let mask = message.update_mask.map(|m| m.paths).unwrap_or_default();
        let current = self
            .store
            .policy(&tenant)
            .await?
            .map(|(p, _)| p)
            .unwrap_or_else(default_policy);
        let mut policy = apply_update(current, update, &mask)?;
        let updated = self.store.put_policy(&tenant, &policy).await?;
        policy.update_time = Some(time::timestamp(updated));
        Ok(Response::new(UpdatePolicyResponse {
            policy: Some(policy),
        }))
    }

    async fn list_conflicts(
        &self,
        request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        let tenant = tenant(&request)?;
        let message = request.get_ref();
        let page = PageRequest::parse(message.page_size, &message.page_token)?;
        let state = match ConflictState::try_from(message.state) {
            Ok(ConflictState::Unspecified) => None,
            Ok(state) => Some(state as i32),
            Err(_) => {
                return Err(ApiError::invalid(vec![Violation::new(
                    "state",
                    "INVALID_ENUM",
                    "is not a conflict state",
                )])
                .into());
            }
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let connection = non_empty(&message.connection_id);
        let object = non_empty(&message.object);
        let mut conflicts = self
            .store
            .conflicts(
                tenant,
                &page,
                state,
                connection.as_deref(),
                object.as_deref(),
            )
            .await?;
        let next_page_token = page.finish(&mut conflicts, |c| &c.id);
        Ok(Response::new(ListConflictsResponse {
            conflicts,
            next_page_token,
        }))
    }

    async fn get_conflict(
        &self,
        request: Request<GetConflictRequest>,
    ) -> Result<Response<GetConflictResponse>, Status> {
        let tenant = tenant(&request)?;
        let id = &request.get_ref().conflict_id;
        if id.is_empty() {
            return Err(ApiError::invalid(vec![Violation::required("conflict_id")]).into());
        }
        let conflict = self
            .store
            .conflict(tenant, id)
            .await?
            .ok_or_else(|| ApiError::not_found("conflict"))?;
        Ok(Response::new(GetConflictResponse {
            conflict: Some(conflict),
        }))
    }
}
