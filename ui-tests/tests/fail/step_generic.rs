use taskflow::prelude::*;

#[step]
async fn parse<T: std::str::FromStr>(text: String) -> Result<(), StepError> {
    let _ = text.parse::<T>();
    Ok(())
}

fn main() {}
