//! Deciding, when a run is resumed, which earlier results may stand in for
//! calls: a step's result is offered for reuse when its definition is
//! unchanged and nothing upstream was changed; the step then reuses it
//! only if its rendered input also matches.

use std::sync::Arc;

use crate::plan::{Plan, StepIdx};
use crate::store::previous::Previous;
use crate::store::StepRecord;

/// What an earlier attempt of the run offers this one.
#[derive(Debug, Default)]
pub struct Reuse {
    /// Per step, the earlier result it may reuse.
    pub records: Vec<Option<Arc<StepRecord>>>,
    /// Steps that had succeeded but whose definition changed since.
    pub changed: Vec<StepIdx>,
    /// Steps that run again because of a change: the changed ones and
    /// every step that depends on them.
    pub invalidated: Vec<StepIdx>,
}

pub fn reuse(plan: &Plan, previous: &Previous) -> Reuse {
    let n = plan.steps().len();
    let mut records: Vec<Option<Arc<StepRecord>>> = vec![None; n];
    let mut changed = Vec::new();
    for (idx, step) in plan.steps().iter().enumerate() {
        let Some(record) = previous.succeeded.get(&step.spec.id) else {
            continue;
        };
        if record.definition.as_deref() == Some(step.definition.as_str()) {
            records[idx] = Some(Arc::new(record.clone()));
        } else {
            changed.push(idx);
        }
    }
    // Everything downstream of a change runs again, even where its input
    // would happen to render the same.
    let mut invalid = vec![false; n];
    let mut stack = changed.clone();
    while let Some(idx) = stack.pop() {
        if std::mem::replace(&mut invalid[idx], true) {
            continue;
        }
        stack.extend(plan.step(idx).dependents.iter().copied());
    }
    let invalidated: Vec<StepIdx> = (0..n).filter(|&i| invalid[i]).collect();
    for &idx in &invalidated {
        records[idx] = None;
    }
    Reuse {
        records,
        changed,
        invalidated,
    }
}
