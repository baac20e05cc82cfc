use taskflow::prelude::*;

struct Steps;

impl Steps {
    #[step]
    async fn run(&self) -> Result<(), StepError> {
        Ok(())
    }
}

fn main() {}
