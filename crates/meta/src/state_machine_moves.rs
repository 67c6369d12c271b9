//! The state machine's operator moves on data servers: drain, remove,
//! rebalance (and its dry run, a query), and the release of handed-over
//! slots. The registry decides (`registry_moves.rs`); this file feeds it the
//! namespace's bytes per placement group and turns outcomes into answers.

use shardline_proto::v1 as pb;
use shardline_proto::v1::meta_request::Body;
use shardline_proto::v1::meta_response::Body as RBody;
use shardline_types::ErrorCode;

use super::StateMachine;
use crate::namespace::OpError;
use crate::registry::{MovePlan, RemoveRefusal};
use crate::wire::ok;

fn plan_to_wire(p: &MovePlan, epoch: u64, applied: bool) -> pb::MovePlan {
    pb::MovePlan {
        epoch,
        moves: p.moves,
        bytes: p.bytes,
        minimum_bytes: p.minimum_bytes,
        spread_before: p.spread_before,
        spread_after: p.spread_after,
        applied,
    }
}

impl StateMachine {
    /// Shard bytes one slot of each placement group holds.
    pub fn pg_bytes(&self) -> Vec<u64> {
        self.ns.pg_shard_bytes(self.registry.pg_count())
    }

    /// A rebalance's plan, changing nothing.
    pub(super) fn plan_rebalance(&self) -> pb::MetaResponse {
        let plan = self.registry.clone().rebalance_now(true, &self.pg_bytes());
        ok(RBody::MovePlan(plan_to_wire(&plan, self.registry.epoch(), false)))
    }

    pub(super) fn apply_move(&mut self, body: &Body) -> Result<pb::MetaResponse, OpError> {
        let bytes = self.pg_bytes();
        let r = &mut self.registry;
        Ok(match body {
            Body::DrainDataServer(d) => {
                let plan = r.drain(d.id, d.cancel, &bytes).map_err(|e| OpError::new(ErrorCode::InvalidArgument, e))?;
                ok(RBody::MovePlan(plan_to_wire(&plan, r.epoch(), true)))
            }
            Body::RemoveDataServer(d) => match r.remove(d.id) {
                Ok(_) => ok(RBody::Empty(pb::Empty {})),
                Err(RemoveRefusal::Unknown) => {
                    return Err(OpError::new(ErrorCode::NotFound, format!("no data server {}", d.id)))
                }
                Err(why) => {
                    return Err(OpError::new(
                        ErrorCode::PermissionDenied,
                        format!("data server {} cannot be removed: {why}", d.id),
                    ))
                }
            },
            Body::Rebalance(b) => {
                r.set_move_rate(b.max_bandwidth);
                let plan = r.rebalance_now(b.dry_run, &bytes);
                ok(RBody::MovePlan(plan_to_wire(&plan, r.epoch(), !b.dry_run)))
            }
            Body::SetRepair(p) => {
                r.set_repair_paused(p.paused);
                ok(RBody::Empty(pb::Empty {}))
            }
            Body::SetScrub(p) => {
                r.set_scrub_paused(p.paused);
                ok(RBody::Empty(pb::Empty {}))
            }
            Body::ReleaseDone(d) => {
                r.release_done(d.server, d.pg, d.shard_index);
                ok(RBody::Empty(pb::Empty {}))
            }
            _ => return Err(OpError::new(ErrorCode::InvalidArgument, "not a data-server move")),
        })
    }
}
