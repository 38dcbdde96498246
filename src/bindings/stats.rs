//! Statistics snapshots of the core as the Python dicts that `Client.stats()` and
//! `Server.stats()` return. Durations are seconds (float); unknown values are `None`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::transport::budget::BudgetStats;
use crate::transport::stats::{ConnStats, TrafficSnapshot};

/// Body bytes on the wire per payload byte: below 1 when compression saved space,
/// 1.0 when nothing was compressed or nothing went through.
fn ratio(wire: u64, payload: u64) -> f64 {
    if payload == 0 {
        1.0
    } else {
        wire as f64 / payload as f64
    }
}

/// Adds the traffic keys shared by connection and server statistics.
pub(crate) fn add_traffic(dict: &Bound<'_, PyDict>, t: &TrafficSnapshot) -> PyResult<()> {
    dict.set_item("packets_in", t.frames_in)?;
    dict.set_item("packets_out", t.frames_queued)?;
    dict.set_item("bytes_in", t.bytes_in)?;
    dict.set_item("bytes_out", t.bytes_out)?;
    dict.set_item("payload_in", t.payload_in)?;
    dict.set_item("payload_out", t.payload_out)?;
    dict.set_item("compression_in", ratio(t.wire_body_in, t.payload_in))?;
    dict.set_item("compression_out", ratio(t.wire_body_out, t.payload_out))?;
    dict.set_item("direct_reads", t.reads_inline)?;
    Ok(())
}

/// Adds the memory budget's keys (a server's statistics, and a client's).
pub(crate) fn add_budget(dict: &Bound<'_, PyDict>, budget: &BudgetStats) -> PyResult<()> {
    dict.set_item("memory_budget", budget.limit)?;
    dict.set_item("memory_used", budget.used)?;
    dict.set_item("memory_peak", budget.peak)?;
    dict.set_item("memory_evictions", budget.evictions)?;
    dict.set_item("memory_pressure", budget.pressure)?;
    Ok(())
}

/// One connection's statistics.
pub(crate) fn connection<'py>(py: Python<'py>, stats: &ConnStats) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    add_traffic(&dict, &stats.traffic)?;
    dict.set_item("queued_bytes", stats.queued_bytes)?;
    dict.set_item("uptime", stats.uptime.as_secs_f64())?;
    dict.set_item(
        "handshake_time",
        stats.handshake_time.map(|d| d.as_secs_f64()),
    )?;
    dict.set_item("rtt", stats.rtt.map(|d| d.as_secs_f64()))?;
    dict.set_item("heartbeat", stats.heartbeat)?;
    dict.set_item("memory_held", stats.memory_held)?;
    Ok(dict)
}
