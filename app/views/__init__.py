"""Qt views: they draw what they are given and emit what the user asks for; they compute nothing heavy."""
