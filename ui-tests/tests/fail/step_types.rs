use taskflow::prelude::*;

struct NotSerde;

#[step]
async fn wrong_context(ctx: &String, input: NotSerde) -> Result<(), StepError> {
    let _ = (ctx, input);
    Ok(())
}

#[step]
async fn wrong_output() -> Result<NotSerde, StepError> {
    Ok(NotSerde)
}

#[step]
async fn not_a_result() -> i64 {
    1
}

fn main() {}
