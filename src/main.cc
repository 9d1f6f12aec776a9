// Start-up only: everything else is in libraries that the tests link.
#include "cli/app.h"

int main(int argc, char** argv) { return beacon::cli::Main(argc, argv); }
