//! One log line per request: method, path (never the query string), status, duration and
//! the uid when a handler recorded one. Headers and bodies are never logged.

use std::future::Future;
use std::time::Instant;

use actix_web::HttpMessage;
use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};

use crate::state::RequestUid;

pub fn log_request<S>(
    req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>> + use<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let fut = srv.call(req);
    async move {
        let result = fut.await;
        let micros = started.elapsed().as_micros();
        let (status, uid) = match &result {
            Ok(res) => (
                res.status().as_u16(),
                res.request().extensions().get::<RequestUid>().map(|u| u.0),
            ),
            Err(e) => (e.as_response_error().status_code().as_u16(), None),
        };
        match uid {
            Some(uid) => tracing::info!(%method, %path, status, micros, uid, "request"),
            None => tracing::info!(%method, %path, status, micros, "request"),
        }
        result
    }
}
