use taskflow::prelude::*;

#[step]
async fn noop() -> Result<(), StepError> {
    Ok(())
}

async fn notify(_outcome: &TaskOutcome) -> Result<(), CallbackError> {
    Ok(())
}

task_flow! {
    flow First {
        callback = notfy,
        steps { noop }
    }

    flow Second {
        callback = noop,
        steps { noop }
    }
}

fn main() {
    let _ = notify;
}
