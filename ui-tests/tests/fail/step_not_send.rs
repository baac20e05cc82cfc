use std::rc::Rc;
use taskflow::prelude::*;

#[step]
async fn hold(ctx: &StepContext) -> Result<(), StepError> {
    let shared = Rc::new(1);
    ctx.cancelled().await;
    let _ = shared;
    Ok(())
}

fn main() {}
