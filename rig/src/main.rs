fn main() -> anyhow::Result<()> {
    // Before any thread exists: the twin runs its own threads (see the function's docs).
    twinloop_model::confine_candle_pool();
    twinloop_rig::cli::main()
}
