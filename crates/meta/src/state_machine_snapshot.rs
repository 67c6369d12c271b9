//! StateMachine ⇄ snapshot v1 conversion (a child of `state_machine` so it
//! sees the dedup map).

use imbl::Vector;

use super::{ClientRecent, StateMachine};
use crate::namespace::Namespace;
use crate::registry::Registry;
use crate::snapshot::{corrupt, v1};
use crate::MetaError;

impl StateMachine {
    /// Everything replicated, except the members (the node adds those).
    pub(crate) fn to_snapshot(&self) -> v1::Snapshot {
        v1::Snapshot {
            namespace: Some(self.ns.to_snapshot()),
            registry: Some(self.registry.to_snapshot()),
            recent: self
                .recent
                .iter()
                .map(|(&client_id, c)| v1::ClientRecent {
                    client_id,
                    last_ns: c.last_ns,
                    responses: c
                        .responses
                        .iter()
                        .map(|(id, r)| v1::Recent { request_id: *id, response: Some(r.clone()) })
                        .collect(),
                })
                .collect(),
            members: Vec::new(),
        }
    }

    pub(crate) fn from_snapshot(s: v1::Snapshot) -> Result<StateMachine, MetaError> {
        let ns = Namespace::from_snapshot(s.namespace.ok_or_else(|| corrupt("snapshot without namespace"))?)?;
        let registry = Registry::from_snapshot(s.registry.ok_or_else(|| corrupt("snapshot without registry"))?)?;
        let recent = s
            .recent
            .into_iter()
            .map(|c| {
                let responses: Vector<_> =
                    c.responses.into_iter().map(|r| (r.request_id, r.response.unwrap_or_default())).collect();
                (c.client_id, ClientRecent { last_ns: c.last_ns, responses })
            })
            .collect();
        Ok(StateMachine { ns, registry, recent, rules: super::ApplyRules::V2 })
    }
}
