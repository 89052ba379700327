//! Liveness (`/healthz`), readiness (`/readyz`) and the per-process operational routes.
//!
//! `/healthz` answers 200 while the process serves HTTP at all. `/readyz` runs every
//! registered [`Readiness`] check concurrently, each with a timeout, and answers 200 only when
//! all pass; otherwise 503, naming the failed checks (details go to the log, not the body).
//! Each service contributes its checks (auth: its database; gateway: Redis); in embedded mode
//! the checks of all services are merged into one [`Readiness`] (design section 1).

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

/// What a readiness check returns: `Err` carries a reason for the log.
pub type CheckResult = Result<(), String>;

/// A boxed readiness probe future.
pub type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;

type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Longest a single check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The set of named readiness checks of a process. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, CheckFn)>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|(name, _)| name))
            .finish()
    }
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check named `name` (shown in the `/readyz` body, e.g. `"postgres"`).
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()) as CheckFuture)));
        self
    }

    /// Adds every check of `other` (embedded mode merges the services' checks).
    pub fn merge(mut self, other: Readiness) -> Self {
        self.checks.extend(other.checks);
        self
    }

    /// Runs all checks concurrently.
    pub async fn report(&self) -> ReadinessReport {
        let runs = self.checks.iter().map(|(name, check)| {
            let check = Arc::clone(check);
            async move {
                let status = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                    Ok(Ok(())) => CheckStatus::Ok,
                    Ok(Err(reason)) => {
                        tracing::warn!(check = name, %reason, "readiness check failed");
                        CheckStatus::Failed
                    }
                    Err(_) => {
                        tracing::warn!(check = name, "readiness check timed out");
                        CheckStatus::Timeout
                    }
                };
                (*name, status)
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let ready = results.iter().all(|(_, s)| *s == CheckStatus::Ok);
        // Merged services may share a check name (`database`): a failure must never be
        // hidden behind a success of the same name, so the worst outcome is kept.
        let mut checks = BTreeMap::new();
        for (name, status) in results {
            checks
                .entry(name)
                .and_modify(|kept: &mut CheckStatus| {
                    if *kept == CheckStatus::Ok {
                        *kept = status;
                    }
                })
                .or_insert(status);
        }
        ReadinessReport {
            status: if ready { "ready" } else { "unready" },
            checks,
        }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The dependency answered.
    Ok,
    /// The dependency answered with an error or could not be reached.
    Failed,
    /// The dependency did not answer within [`CHECK_TIMEOUT`].
    Timeout,
}

/// Body of `/readyz`: `{"status":"ready","checks":{"postgres":"ok"}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    /// `ready` or `unready`.
    pub status: &'static str,
    /// Each check by name.
    pub checks: BTreeMap<&'static str, CheckStatus>,
}

impl ReadinessReport {
    /// Whether every check passed.
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

/// `GET /healthz`: 200 `{"status":"ok"}` while the process serves requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when every check passes, else 503. Needs [`Readiness`] as `web::Data`.
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let report = readiness.report().await;
    if report.is_ready() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

/// Mounts `/healthz`, `/readyz` and `/metrics` with their state. Call it once per process
/// (a standalone service's `Application`, or the embedded binary with merged checks).
pub fn configure_ops(
    cfg: &mut web::ServiceConfig,
    readiness: Readiness,
    metrics: PrometheusHandle,
) {
    cfg.app_data(web::Data::new(readiness))
        .app_data(web::Data::new(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(crate::metrics::render));
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_checks_means_ready() {
        assert!(Readiness::new().report().await.is_ready());
    }

    #[tokio::test]
    async fn one_failing_check_makes_the_process_unready() {
        let readiness = Readiness::new()
            .with_check("good", || async { Ok(()) })
            .with_check("bad", || async { Err("down".to_owned()) });
        let report = readiness.report().await;
        assert!(!report.is_ready());
        assert_eq!(report.checks["good"], CheckStatus::Ok);
        assert_eq!(report.checks["bad"], CheckStatus::Failed);
    }

    #[tokio::test]
    async fn a_failure_is_not_hidden_by_a_merged_check_of_the_same_name() {
        let auth = Readiness::new().with_check("database", || async { Err("down".to_owned()) });
        let tasks = Readiness::new().with_check("database", || async { Ok(()) });
        let report = auth.merge(tasks).report().await;
        assert!(!report.is_ready());
        assert_eq!(report.checks["database"], CheckStatus::Failed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_check_times_out() {
        let readiness = Readiness::new().with_check("slow", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(())
        });
        let report = readiness.report().await;
        assert_eq!(report.checks["slow"], CheckStatus::Timeout);
    }
}
