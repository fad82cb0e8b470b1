//! Which steps are ready: a count of unfinished dependencies per step,
//! lowered as each dependency succeeds, so a step becomes ready the moment
//! its last dependency ends. Each event costs work in proportion to the
//! step's own edges, never to the size of the workflow.

use crate::plan::{Plan, StepIdx};

/// Tracks readiness; knows nothing of how steps are carried out.
pub struct Scheduler<'p> {
    plan: &'p Plan,
    /// Dependencies of each step not yet succeeded.
    waiting: Vec<u32>,
    /// Steps settled by a skip, so they are not skipped twice.
    skipped: Vec<bool>,
}

impl<'p> Scheduler<'p> {
    pub fn new(plan: &'p Plan) -> Self {
        let waiting = plan.steps().iter().map(|s| s.deps.len() as u32).collect();
        Scheduler {
            plan,
            waiting,
            skipped: vec![false; plan.steps().len()],
        }
    }

    /// Steps with no dependencies, in file order.
    pub fn initial(&self) -> Vec<StepIdx> {
        (0..self.waiting.len())
            .filter(|&i| self.waiting[i] == 0)
            .collect()
    }

    /// Records that `idx` succeeded; returns the steps it made ready.
    pub fn succeeded(&mut self, idx: StepIdx) -> Vec<StepIdx> {
        let mut ready = Vec::new();
        for &d in &self.plan.step(idx).dependents {
            self.waiting[d] -= 1;
            if self.waiting[d] == 0 && !self.skipped[d] {
                ready.push(d);
            }
        }
        ready
    }

    /// Records that `idx` did not succeed; returns every step that can now
    /// never run, each with the dependency that stopped it.
    pub fn failed(&mut self, idx: StepIdx) -> Vec<(StepIdx, StepIdx)> {
        let mut skipped = Vec::new();
        let mut stack = vec![idx];
        while let Some(cause) = stack.pop() {
            for &d in &self.plan.step(cause).dependents {
                if !self.skipped[d] {
                    self.skipped[d] = true;
                    skipped.push((d, cause));
                    stack.push(d);
                }
            }
        }
        skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn plan(yaml: &str) -> Plan {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(yaml.as_bytes()).unwrap();
        crate::plan::load(file.path()).unwrap_or_else(|r| panic!("{r}"))
    }

    fn ids(plan: &Plan, list: &[StepIdx]) -> Vec<String> {
        list.iter().map(|&i| plan.step(i).spec.id.clone()).collect()
    }

    //   a ──▶ c ──▶ d
    //   b ──▶ c
    //   b ──▶ e
    const DIAMOND: &str = "name: t\nsteps:\n  a: {run: 'true'}\n  b: {run: 'true'}\n  \
        c: {run: 'true', needs: [a, b]}\n  d: {run: 'true', needs: [c]}\n  e: {run: 'true', needs: [b]}\n";

    #[test]
    fn a_step_is_ready_when_its_last_dependency_succeeds() {
        let plan = plan(DIAMOND);
        let mut s = Scheduler::new(&plan);
        assert_eq!(ids(&plan, &s.initial()), ["a", "b"]);
        assert!(s.succeeded(plan.find("a").unwrap()).is_empty());
        assert_eq!(
            ids(&plan, &s.succeeded(plan.find("b").unwrap())),
            ["c", "e"]
        );
        assert_eq!(ids(&plan, &s.succeeded(plan.find("c").unwrap())), ["d"]);
    }

    #[test]
    fn a_failure_skips_dependents_and_not_neighbours() {
        let plan = plan(DIAMOND);
        let mut s = Scheduler::new(&plan);
        let skipped = s.failed(plan.find("a").unwrap());
        let names: Vec<_> = skipped
            .iter()
            .map(|(d, _)| plan.step(*d).spec.id.as_str())
            .collect();
        assert_eq!(names, ["c", "d"]);
        assert_eq!(ids(&plan, &s.succeeded(plan.find("b").unwrap())), ["e"]);
    }
}
