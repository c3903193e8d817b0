// swift-tools-version:5.9
// The platform-independent core of the iOS demo (metadata.json, preprocessing, sliding
// window, smoothing) and its XCTest suite over tests/golden. `swift test` runs it on macOS
// (and on Linux: it needs only Foundation). The app itself is App/ + project.yml (XcodeGen).
import PackageDescription

let package = Package(
    name: "GestureCore",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [.library(name: "GestureCore", targets: ["GestureCore"])],
    targets: [
        .target(name: "GestureCore"),
        .testTarget(name: "GestureCoreTests", dependencies: ["GestureCore"]),
    ]
)
