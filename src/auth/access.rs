//! The per-route guard. Routes declare who may call them where they are registered:
//! `web::get().to(list_users).wrap(Access::roles(&[Role::Admin]))`. Admin passes every guard.
//! No user -> 401; a user whose roles do not match -> 403.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::HttpMessage;

use super::{CurrentUser, Role, RoleSet};
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (`/auth/login`).
    Public,
    /// Any logged-in user, even one without a role (`/auth/*`).
    AnyUser,
    /// Users holding one of these roles (admins always).
    Roles(RoleSet),
}

impl Access {
    pub fn roles(roles: &[Role]) -> Access {
        Access::Roles(roles.iter().copied().collect())
    }

    pub fn check(self, user: Option<&CurrentUser>) -> Result<(), ApiError> {
        match self {
            Access::Public => Ok(()),
            Access::AnyUser => user.map(|_| ()).ok_or_else(ApiError::unauthorized),
            Access::Roles(allowed) => {
                let user = user.ok_or_else(ApiError::unauthorized)?;
                if user.is_admin() || user.roles.intersects(allowed) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden())
                }
            }
        }
    }
}

impl<S, B: 'static> Transform<S, ServiceRequest> for Access
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = AccessGuard<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(AccessGuard {
            service: Rc::new(service),
            access: *self,
        }))
    }
}

pub struct AccessGuard<S> {
    service: Rc<S>,
    access: Access,
}

impl<S, B: 'static> Service<ServiceRequest> for AccessGuard<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, actix_web::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let verdict = self.access.check(req.extensions().get::<CurrentUser>());
        if let Err(err) = verdict {
            return Box::pin(ready(Ok(req.error_response(err).map_into_right_body())));
        }
        let service = Rc::clone(&self.service);
        Box::pin(async move {
            service
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[Role]) -> CurrentUser {
        crate::auth::test_user(1, roles)
    }

    #[test]
    fn guards_answer_401_403_or_pass() {
        let researchers = Access::roles(&[Role::Researcher]);
        assert!(matches!(
            researchers.check(None),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            researchers.check(Some(&user(&[]))),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            researchers.check(Some(&user(&[Role::Doctor]))),
            Err(ApiError::Forbidden(_))
        ));
        assert!(researchers
            .check(Some(&user(&[Role::Doctor, Role::Researcher])))
            .is_ok());
        assert!(researchers.check(Some(&user(&[Role::Admin]))).is_ok());
        assert!(Access::AnyUser.check(Some(&user(&[]))).is_ok());
        assert!(Access::AnyUser.check(None).is_err());
        assert!(Access::Public.check(None).is_ok());
    }
}
