use taskflow::prelude::*;

struct Pair {
    a: i64,
    b: i64,
}

#[step]
async fn tuple((a, b): (i64, i64)) -> Result<i64, StepError> {
    Ok(a + b)
}

#[step]
async fn reference(ctx: &StepContext, name: &str) -> Result<(), StepError> {
    let _ = (ctx, name);
    Ok(())
}

#[step]
async fn generic(value: impl serde::de::DeserializeOwned) -> Result<(), StepError> {
    let _ = value;
    Ok(())
}

#[step]
async fn destructure(Pair { a, b }: Pair) -> Result<i64, StepError> {
    Ok(a + b)
}

fn main() {}
