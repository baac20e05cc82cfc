use taskflow::prelude::*;

async fn plain(a: i64) -> Result<i64, StepError> {
    Ok(a)
}

struct Sum;

task_flow! {
    flow Example {
        steps { Sum, plain(a = 1) }
    }
}

fn main() {
    let _ = plain(1);
}
