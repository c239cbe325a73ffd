"""Prints fib(n) for n from the command line (default 30), computed the slow, recursive way."""
import sys


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(f"fib({n}) = {fib(n)}")


if __name__ == "__main__":
    main()
