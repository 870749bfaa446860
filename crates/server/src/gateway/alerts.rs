//! Spend alerts: a periodic evaluator compares month-to-date spend with each alert's threshold
//! and, once per alert and month (recorded in the database, so once across instances too),
//! POSTs a webhook signed with HMAC-SHA-256.
//!
//! Webhook request: `POST {alert_webhook_url}` with JSON body
//! `{"type":"spend_alert.triggered","alert":{…},"spent_cents":N,"period_start":T,"sent_at":T}`,
//! headers `x-keyplane-timestamp: T` and `x-keyplane-signature: sha256=<hex>` where the HMAC
//! covers `"{T}.{body}"` under the configured secret.

use hmac::{Hmac, Mac};
use keyplane_core::ids::ProjectId;
use keyplane_core::policy::{month_start, SpendAlert};
use keyplane_core::ports::{AlertStore, UsageStore};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

pub struct AlertEvaluator {
    pub alerts: Arc<dyn AlertStore>,
    pub usage: Arc<dyn UsageStore>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
    pub client: reqwest::Client,
}

/// `sha256=<hex>` of `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl AlertEvaluator {
    /// One pass over every alert.
    pub async fn evaluate(&self) {
        let Ok(alerts) = self.alerts.all_alerts().await else {
            return;
        };
        let now = keyplane_core::time::now();
        let period = month_start(now);
        for alert in alerts {
            let project = alert.project_id.clone().map(ProjectId::from_trusted);
            let Ok(spent_nano) = self.usage.cost_since(project.as_ref(), period).await else {
                continue;
            };
            if !keyplane_core::usage::threshold_reached(alert.threshold_amount, spent_nano) {
                continue;
            }
            match self.alerts.record_firing(&alert.id, period, now).await {
                Ok(true) => {
                    self.deliver(
                        &alert,
                        spent_nano / keyplane_core::usage::NANO_USD_PER_CENT,
                        period,
                        now,
                    )
                    .await
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, alert = %alert.id, "cannot record alert firing")
                }
            }
        }
    }

    async fn deliver(&self, alert: &SpendAlert, spent_cents: i64, period: i64, now: i64) {
        tracing::warn!(alert = %alert.id, project = ?alert.project_id, spent_cents, "spend alert triggered");
        let Some(url) = &self.webhook_url else {
            return;
        };
        let body = json!({
            "type": "spend_alert.triggered",
            "alert": {
                "id": alert.id,
                "project_id": alert.project_id,
                "threshold_amount": alert.threshold_amount,
                "currency": alert.currency,
                "interval": alert.interval,
                "notification_channel": {"type": "email", "recipients": alert.recipients, "subject_prefix": alert.subject_prefix},
            },
            "spent_cents": spent_cents,
            "period_start": period,
            "sent_at": now,
        })
        .to_string();
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-keyplane-timestamp", now.to_string());
        if let Some(secret) = &self.webhook_secret {
            req = req.header(
                "x-keyplane-signature",
                signature(secret.expose_secret(), now, body.as_bytes()),
            );
        }
        for attempt in 0..3u32 {
            match req.try_clone().map(|r| r.body(body.clone()).send()) {
                Some(fut) => match fut.await {
                    Ok(resp) if resp.status().is_success() => return,
                    Ok(resp) => tracing::warn!(
                        status = resp.status().as_u16(),
                        attempt,
                        "alert webhook refused"
                    ),
                    Err(e) => tracing::warn!(error = %e, attempt, "alert webhook failed"),
                },
                None => return,
            }
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_and_body() {
        let s = signature("secret", 1700000000, b"{}");
        assert!(s.starts_with("sha256="));
        assert_eq!(s.len(), 7 + 64);
        assert_ne!(s, signature("secret", 1700000001, b"{}"));
        assert_eq!(s, signature("secret", 1700000000, b"{}"));
    }
}
