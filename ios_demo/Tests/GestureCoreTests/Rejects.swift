import XCTest

/// Asserts that `body` throws an error whose description contains `message`.
func rejects(_ message: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected GestureError: \(message)", file: file, line: line)
    } catch {
        XCTAssertTrue("\(error)".contains(message), "'\(error)' should contain '\(message)'", file: file, line: line)
    }
}
