using UnityEngine;
#if ENABLE_INPUT_SYSTEM
using UnityEngine.InputSystem;
#endif

/// <summary>
/// The sample's walker (flying: no gravity, no collisions). Controls: WASD move level with the
/// ground whatever the pitch, Space and C go up and down; the arrow keys turn and tilt the view,
/// and so does moving the mouse while holding the middle button. The left and right buttons stay
/// free for <see cref="CubeWalkSample"/>'s place and remove, so no button does two things. The
/// view starts from the transform's authored rotation (the scene's or prefab's camera angle), not
/// level. Works with the Input System package and with the legacy Input Manager.
/// </summary>
public class SampleFirstPerson : MonoBehaviour
{
    [Tooltip("Walking speed, units per second.")]
    public float speed = 8f;
    [Tooltip("Degrees per pixel of mouse movement while the middle button is held.")]
    [Min(MinLookSpeed)] public float lookSpeed = 0.2f;
    [Tooltip("Degrees per second while an arrow key is held.")]
    public float turnSpeed = 90f;
    float yaw, pitch;
    // The arrow keys are turned into mouse pixels by dividing by lookSpeed: 0 would make that
    // infinite, and the rotation NaN every frame.
    const float MinLookSpeed = 0.01f;

    void OnEnable()
    {
        // Start from the authored angle: eulerAngles are 0..360, pitch is kept in -89..89.
        Vector3 authored = transform.eulerAngles;
        yaw = authored.y;
        pitch = Mathf.Clamp(Mathf.DeltaAngle(0f, authored.x), -89f, 89f);
    }

    void Update()
    {
        Vector3 move;
        Vector2 look;
        // [Min] guards the Inspector only; a script can still set 0 (or less).
        float degreesPerPixel = Mathf.Max(lookSpeed, MinLookSpeed);
        Read(out move, out look, turnSpeed * Time.deltaTime / degreesPerPixel);
        if (look.x != 0f || look.y != 0f)
        {
            yaw += look.x * degreesPerPixel;
            pitch = Mathf.Clamp(pitch - look.y * degreesPerPixel, -89f, 89f);
            transform.rotation = Quaternion.Euler(pitch, yaw, 0f);
        }
        transform.position += Quaternion.Euler(0f, yaw, 0f) * move * (speed * Time.deltaTime);
    }

    // Movement (x right, y up, z forward, each -1..1) and look in mouse pixels; a held arrow key
    // counts as keyPixels pixels this frame.
    static void Read(out Vector3 move, out Vector2 look, float keyPixels)
    {
#if ENABLE_INPUT_SYSTEM
        var k = Keyboard.current;
        var m = Mouse.current;
        move = k == null ? Vector3.zero : new Vector3(
            (k.dKey.isPressed ? 1 : 0) - (k.aKey.isPressed ? 1 : 0),
            (k.spaceKey.isPressed ? 1 : 0) - (k.cKey.isPressed ? 1 : 0),
            (k.wKey.isPressed ? 1 : 0) - (k.sKey.isPressed ? 1 : 0));
        look = m != null && m.middleButton.isPressed ? m.delta.ReadValue() : Vector2.zero;
        if (k != null)
            look += new Vector2(
                (k.rightArrowKey.isPressed ? 1 : 0) - (k.leftArrowKey.isPressed ? 1 : 0),
                (k.upArrowKey.isPressed ? 1 : 0) - (k.downArrowKey.isPressed ? 1 : 0)) * keyPixels;
#else
        move = new Vector3(
            (Input.GetKey(KeyCode.D) ? 1 : 0) - (Input.GetKey(KeyCode.A) ? 1 : 0),
            (Input.GetKey(KeyCode.Space) ? 1 : 0) - (Input.GetKey(KeyCode.C) ? 1 : 0),
            (Input.GetKey(KeyCode.W) ? 1 : 0) - (Input.GetKey(KeyCode.S) ? 1 : 0));
        look = Input.GetMouseButton(2) ? new Vector2(Input.GetAxis("Mouse X"), Input.GetAxis("Mouse Y")) * 10f : Vector2.zero;
        look += new Vector2(
            (Input.GetKey(KeyCode.RightArrow) ? 1 : 0) - (Input.GetKey(KeyCode.LeftArrow) ? 1 : 0),
            (Input.GetKey(KeyCode.UpArrow) ? 1 : 0) - (Input.GetKey(KeyCode.DownArrow) ? 1 : 0)) * keyPixels;
#endif
    }
}
