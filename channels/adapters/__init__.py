"""Payment-channel adapters: one class per channel kind behind ``ChannelAdapter`` (design §6, style.md §1)."""
