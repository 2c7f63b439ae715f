fn main() -> anyhow::Result<()> {
    twinloop_rig::cli::main()
}
