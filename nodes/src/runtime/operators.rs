//! The Rust operators a program registered, by the names its job uses (`add_source("numbers")`,
//! `transform("running-sum")`, `add_sink("store")`).
//!
//! The registry is built once, before any job runs, and shared read-only by every task thread
//! of the process (an `Arc`): a task asks it for a fresh operator instance per subtask when it
//! builds its chain. A process started by the `weir` binary has an empty registry, so a job
//! with Rust operators fails there with core's message naming the missing operator.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use weir_core::dataflow::operators::{Operator, OperatorContext};

/// Makes one instance of a Rust operator for the subtask `context` names.
pub type OperatorFactory = dyn Fn(&OperatorContext) -> Box<dyn Operator> + Send + Sync;

/// Named factories of Rust operators; cloning shares them.
#[derive(Clone, Default)]
pub struct Operators {
    factories: Arc<BTreeMap<String, Arc<OperatorFactory>>>,
}

impl Operators {
    /// An empty registry.
    pub fn new() -> Operators {
        Operators::default()
    }

    /// Registers `factory` under `name`, the name the job's builder used.
    ///
    /// # Panics
    /// When `name` is already registered: two operators under one name is a bug in the program
    /// (as two handlers for one route are in axum).
    pub fn register(
        mut self,
        name: &str,
        factory: impl Fn(&OperatorContext) -> Box<dyn Operator> + Send + Sync + 'static,
    ) -> Operators {
        let factories = Arc::make_mut(&mut self.factories);
        let previous = factories.insert(name.to_string(), Arc::new(factory));
        assert!(previous.is_none(), "a Rust operator is already registered as `{name}`");
        self
    }

    /// A new instance of the operator registered as `name`, for the subtask `context` names.
    pub fn create(&self, context: &OperatorContext, name: &str) -> Option<Box<dyn Operator>> {
        self.factories.get(name).map(|factory| factory(context))
    }

    /// Whether an operator is registered as `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

impl fmt::Debug for Operators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::dataflow::operators::{Collector, OperatorError};
    use weir_core::ids::SubtaskIndex;
    use weir_core::row::Value;

    struct Nothing;

    impl Operator for Nothing {
        fn process(&mut self, _: &[Value], _: &mut dyn Collector) -> Result<(), OperatorError> {
            Ok(())
        }
    }

    fn context() -> OperatorContext {
        OperatorContext { uid: "t".into(), subtask: SubtaskIndex(0), parallelism: 1, max_parallelism: 128, attempt: 0 }
    }

    #[test]
    fn a_registered_name_makes_an_instance_and_an_unknown_name_none() {
        let operators = Operators::new().register("nothing", |_| Box::new(Nothing));
        let shared = operators.clone();
        assert!(shared.create(&context(), "nothing").is_some());
        assert!(shared.create(&context(), "other").is_none());
        assert_eq!(shared.names().collect::<Vec<_>>(), ["nothing"]);
    }

    #[test]
    #[should_panic(expected = "already registered as `nothing`")]
    fn registering_a_name_twice_is_a_bug() {
        let _ = Operators::new().register("nothing", |_| Box::new(Nothing)).register("nothing", |_| Box::new(Nothing));
    }
}
