//! One Prometheus recorder per process, rendered at /metrics.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder; later calls (several components in one process) reuse it.
pub fn install() {
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new().install_recorder().expect("no other metrics recorder is installed in this process")
    });
}

pub fn render() -> String {
    HANDLE.get().map(PrometheusHandle::render).unwrap_or_default()
}
