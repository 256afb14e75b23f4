"""The vocabulary every layer shares and nothing else: errors (each with a status and an exit code), the
records of images and faces, the results handed to callers, and the one settings object. Imports nothing
from facesearch outside this folder."""
