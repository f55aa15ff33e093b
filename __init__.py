"""comfyui-gan: GAN image synthesis nodes for ComfyUI. Registration only; see nodes/ and gan_models/."""
# The frontend serves this folder: docs/<node id>.md is each node's help page (docs.comfy.org/custom-nodes/help_page).
WEB_DIRECTORY = "./web"

# ComfyUI imports this folder as a package, whatever its name. pytest 8 also imports a test tree's root
# __init__.py, and where the clone's folder name is no identifier (comfyui-gan) it does so as a plain
# module with no parent package: then there is nothing to register.
if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from .nodes.host import install_example_inputs, plain_error_names, register_model_folder

    register_model_folder()
    install_example_inputs()
    plain_error_names()

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
