use taskflow::prelude::*;

task_flow! {
    flow NoSteps {
        type = "x",
    }

    flow Empty {
        steps {}
    }
}

fn main() {
    let _ = NoSteps::builder();
}
