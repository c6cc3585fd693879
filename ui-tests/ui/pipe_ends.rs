// Pipe::simplex(): the receiving end cannot send, the sending end cannot
// receive (Python's `Pipe(duplex=False)`, enforced by the type system).
use managers::process::Pipe;

fn main() -> managers::Result<()> {
    let (reader, writer) = Pipe::simplex()?;
    reader.send(&1u8)?;
    let _: u8 = writer.recv()?;
    Ok(())
}
