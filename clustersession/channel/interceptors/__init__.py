"""The interceptor stack between the channel and its transport."""
