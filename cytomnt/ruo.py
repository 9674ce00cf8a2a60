"""The research-use statement every output carries."""

RUO = ("Research use only. cytomnt is not a validated clinical decision tool; its numbers and "
       "flags must not be used on their own to guide patient care.")
