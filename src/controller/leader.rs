//! Leader election on a coordination.k8s.io Lease: only the holder runs the controllers; every
//! replica serves the webhook. Losing the Lease stops the controllers (in-flight reconciles
//! finish); shutting down releases the Lease (clears its holder), so another replica takes it
//! at its next check without waiting for the term to run out. A follower checks when the term
//! it last read ends, so a take-over comes within one lease duration of the shutdown.

use crate::error::{Error, Result};
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use std::future::Future;
use tokio::sync::watch;

/// Lease timing: a holder that stops renewing loses the Lease after `LEASE_SECONDS`.
pub const LEASE_SECONDS: u64 = 15;
const GRACE_SECONDS: u64 = 5;

/// Runs `work` while this replica holds the Lease, until `shutdown` turns true.
/// `work` receives a channel that turns true when it must stop.
pub async fn run_while_leader<F, Fut>(
    client: Client,
    namespace: &str,
    lease_name: &str,
    identity: String,
    mut shutdown: watch::Receiver<bool>,
    work: F,
) -> Result<()>
where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, lease_name)
        .with_namespace(namespace)
        .with_identity(identity.clone())
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .build()
        .await
        .map_err(|e| {
            Error::Config(format!(
                "leader election on Lease {namespace}/{lease_name}: {e}"
            ))
        })?;
    let (mut leader, task) = manager.watch().await;
    tracing::info!(lease = lease_name, identity = %identity, "waiting for leadership");
    loop {
        // Wait to become leader (or to be told to stop).
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => break,
            changed = leader.wait_for(|is_leader| *is_leader) => {
                if changed.is_err() {
                    break;
                }
            }
        }
        tracing::info!(lease = lease_name, "became leader: starting controllers");
        let (stop_tx, stop_rx) = watch::channel(false);
        let work_future = work(stop_rx);
        tokio::pin!(work_future);
        let mut stopping = false;
        loop {
            tokio::select! {
                () = &mut work_future => break,
                _ = shutdown.wait_for(|stop| *stop), if !stopping => {
                    stopping = true;
                    let _ = stop_tx.send(true);
                }
                lost = leader.wait_for(|is_leader| !*is_leader), if !stopping => {
                    tracing::warn!(lease = lease_name, "lost leadership: stopping controllers");
                    stopping = true;
                    let _ = stop_tx.send(true);
                    if lost.is_err() {
                        continue;
                    }
                }
            }
        }
        if *shutdown.borrow() {
            break;
        }
    }
    // Dropping the receiver makes the manager release the Lease.
    drop(leader);
    match task.await {
        Ok(Ok(_)) => tracing::info!(lease = lease_name, "released the Lease"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not release the Lease; it expires in {LEASE_SECONDS}s")
        }
        Err(e) => tracing::warn!(error = %e, "leader election task failed"),
    }
    Ok(())
}
